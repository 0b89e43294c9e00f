"""Study v2's statistics (docs/study.md): paired differences across seeds, the paired t-test, TOST
equivalence within a stated bound, Holm's correction across the claims, and the seeds a paired
design needs for 80 % power, from a pilot's standard deviation of the paired differences.

The distributions come from statsmodels (the `analysis` extra), imported inside each function so
that the core installs without it; a missing statsmodels is a clear error, not an ImportError deep
in a figure. Differences are "a − b" in accuracy points of the same seed's two cells: pairing by
seed removes what the seed does to both (the prompts drawn, the initial evaluation samples).

    from uniopd.analysis.inference import paired_differences, claim_test, holm
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05  # the family-wise error rate across the study's claims (Holm)
POWER = 0.8
HOLDS, FAILS, EQUIVALENT, OPEN = "holds", "reversed", "equivalent", "unresolved"


class StatisticsUnavailable(RuntimeError):
    """statsmodels is not installed: the study's tests cannot be computed."""


def _statsmodels():
    try:
        import statsmodels.stats.multitest as multitest
        import statsmodels.stats.power as power
        import statsmodels.stats.weightstats as weightstats
    except ImportError as exc:
        raise StatisticsUnavailable(
            "study v2's tests need statsmodels, which is not installed: "
            "pip install 'uniopd[analysis]' (or pip install statsmodels)"
        ) from exc
    return weightstats, power, multitest


def paired_differences(a: pd.Series, b: pd.Series) -> pd.Series:
    """a − b for the seeds both cells ran (each indexed by seed); a seed only one cell ran drops
    out rather than pairing with nothing."""
    seeds = a.dropna().index.intersection(b.dropna().index)
    return (a.loc[seeds] - b.loc[seeds]).sort_index()


@dataclass(frozen=True)
class ClaimTest:
    """One claim's paired difference read three ways (raw p-values; Holm adjusts them across the
    claims): better (one-sided, mean > 0), worse (one-sided, mean < 0) and equivalent (TOST
    within ±bound)."""

    mean: float
    sd: float
    n: int
    ci_low: float  # the 95 % two-sided t interval of the mean difference
    ci_high: float
    p_better: float
    p_worse: float
    p_equivalent: float
    bound: float


def claim_test(d: pd.Series | np.ndarray, bound: float) -> ClaimTest:
    """The paired t-tests and TOST of the differences `d` (one per seed) with equivalence
    bound ±`bound` (same units as d). Under 2 seeds every p-value is NaN (no variance)."""
    if not bound > 0:
        raise ValueError(f"the equivalence bound must be > 0, got {bound}")
    x = np.asarray(pd.Series(d).dropna(), dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        nan = float("nan")
        return ClaimTest(mean, nan, n, nan, nan, nan, nan, nan, bound)
    weightstats, _, _ = _statsmodels()
    stats = weightstats.DescrStatsW(x)
    low, high = stats.tconfint_mean(alpha=0.05)
    p_equivalent = stats.ttost_mean(-bound, bound)[0]
    return ClaimTest(
        mean=mean,
        sd=float(x.std(ddof=1)),
        n=n,
        ci_low=float(low),
        ci_high=float(high),
        p_better=float(stats.ttest_mean(0.0, alternative="larger")[1]),
        p_worse=float(stats.ttest_mean(0.0, alternative="smaller")[1]),
        p_equivalent=float(p_equivalent),
        bound=bound,
    )


def holm(p_values: list[float], alpha: float = ALPHA) -> list[float]:
    """Holm-adjusted p-values (compare each with alpha); a NaN (a claim without two seeds) stays
    NaN and does not count in the family."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        _, _, multitest = _statsmodels()
        out[ok] = multitest.multipletests(p[ok], alpha=alpha, method="holm")[1]
    return out.tolist()


def verdicts(tests: dict[str, ClaimTest], alpha: float = ALPHA) -> dict[str, str]:
    """Each claim's verdict, Holm-corrected across the claims separately for each reading: holds
    (better), reversed (worse), equivalent (within ±bound), else unresolved. A claim both better
    and within the bound holds: its effect is real but smaller than the bound."""
    names = list(tests)
    adjusted = {
        key: dict(zip(names, holm([getattr(tests[n], key) for n in names], alpha)))
        for key in ("p_better", "p_worse", "p_equivalent")
    }
    out = {}
    for n in names:
        if adjusted["p_better"][n] < alpha:
            out[n] = HOLDS
        elif adjusted["p_worse"][n] < alpha:
            out[n] = FAILS
        elif adjusted["p_equivalent"][n] < alpha:
            out[n] = EQUIVALENT
        else:
            out[n] = OPEN
    return out


def power_at(sd: float, effect: float, seeds: int, alpha: float) -> float:
    """The one-sided paired t-test's power to find a true mean difference `effect` with `seeds`
    pairs whose differences have standard deviation `sd`."""
    _, power, _ = _statsmodels()
    return float(
        power.TTestPower().power(
            effect_size=effect / sd, nobs=seeds, alpha=alpha, alternative="larger"
        )
    )


def seeds_needed(sd: float, effect: float, alpha: float, power: float = POWER) -> int:
    """Seeds (pairs) for the one-sided paired t-test to reach `power` at a true difference
    `effect`, given the pilot's `sd` of the paired differences (at least 2)."""
    if not (sd > 0 and effect > 0):
        raise ValueError(f"sd and effect must be > 0, got sd={sd}, effect={effect}")
    _, stats_power, _ = _statsmodels()
    n = stats_power.TTestPower().solve_power(
        effect_size=effect / sd, alpha=alpha, power=power, alternative="larger"
    )
    return max(2, math.ceil(float(np.asarray(n).item()) - 1e-9))


def tost_power_floor(sd: float, bound: float, seeds: int, alpha: float) -> float:
    """A lower bound on TOST's power to call a truly null difference equivalent within ±bound:
    TOST passes when both one-sided tests do, so its power is at least 2·p₁ − 1, p₁ being one
    one-sided test's power at a distance `bound` from the truth."""
    return max(0.0, 2 * power_at(sd, bound, seeds, alpha) - 1)


def holm_alpha(claims: int, alpha: float = ALPHA) -> float:
    """The smallest per-claim level Holm may use (the first, Bonferroni's step): plan the seeds
    for it and every claim keeps its planned power whatever order the p-values come in."""
    return alpha / claims
