"""Study v2's claim rows (docs/study.md, the pre-registration): per claim and domain, the paired
differences it names, their one-sided t-tests and TOST, Holm's correction across the 5 claims × 2
domains for each reading, the verdict, the effect with its 95 % interval, the pairs it rests on of
those planned, the power the design has at the bound Δ and, for an unresolved row, the seeds that
would resolve it. The two-domain mean is reported beside (never tested), and the flaw-0 cells
minus OPD are explanatory rows without a verdict.

    python -m uniopd.analysis.compact runs/study_v2 --out paper_figures/study_v2/study_v2.parquet
    uniopd figures paper_figures/study_v2/study_v2.parquet --out paper_figures/study_v2

A difference is a signed sum of cells, paired by seed: it is computed on the seeds every one of its
cells ran, so a study stopped part-way reads the pairs it has ("n / planned"). A cell without any
run gives "not run yet", outside the Holm family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from uniopd.analysis import inference as inf
from uniopd.analysis.runs import Runs
from uniopd.analysis.study_v2_data import (
    DOMAINS,
    final_points,
    log2_steps,
    order_after,
    per_seed,
    planned_seeds,
    steps_to_teacher,
)

NOT_RUN = "not run yet"
BESIDE = "—"  # the two-domain mean and the explanatory rows: reported, not tested
FAMILY = 10  # 5 claims × 2 domains (docs/study.md)
ORDER_AFTER_MIN = 0.95  # C4: calibration restores order when this share of pairs is in order
READINGS = ("p_better", "p_worse", "p_equivalent")


@dataclass(frozen=True)
class Difference:
    """A signed sum of cells, paired by seed, e.g. C1's [uniopd − opd](f0.6) − [uniopd − opd](f0)."""

    label: str
    cells: dict[str, int]  # cell -> +1 / −1


@dataclass(frozen=True)
class Claim:
    name: str
    text: str
    differences: tuple[Difference, ...]
    bound: float | None  # TOST's ±Δ in points; None: no equivalence read (C5)
    null: float = 0.0  # H1: every difference > null (C5: log2 ratio > 1, half the steps)
    steps: bool = False  # C5: log2 steps to teacher level, else final accuracy in points


def _minus(a: str, b: str, label: str | None = None) -> Difference:
    return Difference(label or f"{a} − {b}", {a: 1, b: -1})


CLAIMS = (
    Claim(
        "C1",
        "Uni-OPD's gain over OPD grows where the teacher mis-orders (flaw 0.6 against 0)",
        (
            Difference(
                "[uniopd − opd](f0.6) − [uniopd − opd](f0)",
                {"f0.6/uniopd": 1, "f0.6/opd": -1, "f0/uniopd": -1, "f0/opd": 1},
            ),
        ),
        bound=2.0,
    ),
    Claim(
        "C2",
        "offline balancing beats none and both filters (skew 0.8)",
        tuple(
            _minus("skew/balance", f"skew/{b}")
            for b in ("none", "drop_all_correct", "drop_all_wrong")
        ),
        bound=1.0,
    ),
    Claim(
        "C3",
        "online balancing at r = 1 beats correct-only and no control (skew 0.8)",
        (_minus("online/r1.0", "online/rinf"), _minus("online/r1.0", "online/no_control")),
        bound=1.0,
    ),
    Claim(
        "C4",
        "the margin shift helps where the teacher mis-orders, beyond the same bonus without "
        "gap < δ, and restores order (flaw 0.6)",
        (_minus("f0.6/shift_only", "f0.6/opd"), _minus("f0.6/shift_only", "f0.6/bonus")),
        bound=2.0,
    ),
    Claim(
        "C5",
        "OPD / Uni-OPD reach teacher level in under half GRPO's steps (horizon 8)",
        (
            _minus("horizon/grpo", "horizon/opd", "log2 steps grpo / opd"),
            _minus("horizon/grpo", "horizon/uniopd", "log2 steps grpo / uniopd"),
        ),
        bound=None,
        null=1.0,
        steps=True,
    ),
)

EXPLANATORY = tuple(
    _minus(f"f0/{c}", "f0/opd")
    for c in ("uniopd", "shift_only", "offline_only", "online_only", "bonus")
)


def differences(
    values: dict[tuple[str, str], pd.Series], diff: Difference, domain: str
) -> pd.Series | None:
    """The difference per seed (`values`: study_v2_data.per_seed), on the seeds all its cells
    ran in `domain`; None when a cell has no run."""
    if any((cell, domain) not in values for cell in diff.cells):
        return None
    picked = pd.concat([values[(cell, domain)] for cell in diff.cells], axis=1).dropna()
    return (picked * list(diff.cells.values())).sum(axis=1).sort_index()


def _describe(d: pd.Series, diff: Difference, planned: int, bound, null: float) -> dict:
    """One difference's numbers: its effect with the 95 % interval, pairs of those planned, raw
    p-values of the three readings (H1: mean > null), the power at Δ now and at the plan, and
    the seeds Δ would need at Holm's first step."""
    # C5 has no bound: TOST is not read, so any bound serves the shared call and its p is dropped
    t = inf.claim_test(d - null, bound if bound else 1.0)
    level = inf.holm_alpha(FAMILY)
    can = bound is not None and t.n >= 2 and t.sd > 0
    return {
        "label": diff.label,
        "n": t.n,
        "planned": planned,
        "mean": t.mean + null,
        "ci_low": t.ci_low + null,
        "ci_high": t.ci_high + null,
        "sd": t.sd,
        "p_better": t.p_better,
        "p_worse": t.p_worse,
        "p_equivalent": t.p_equivalent if bound else float("nan"),
        "power_now": inf.power_at(t.sd, bound, t.n, level) if can else float("nan"),
        "power_planned": inf.power_at(t.sd, bound, planned, level) if can else float("nan"),
        "seeds_needed": inf.seeds_needed(t.sd, bound, level) if can else None,
    }


def _row(claim: Claim, values: dict, domain: str, kind: str = "claim") -> dict:
    """One claim in one domain, before Holm: each difference described, and the claim's p-values
    by intersection–union (all must hold: the largest p for holds and equivalent, the smallest
    for reversed). A cell never run makes the row "not run yet" (the differences it can read
    are still described)."""
    row: dict[str, Any] = {"claim": claim.name, "kind": kind, "text": claim.text}
    row["domain"] = domain
    row |= {"bound": claim.bound, "null": claim.null}
    row |= {"unit": "log2 steps" if claim.steps else "points"}
    cells = {c for diff in claim.differences for c in diff.cells}
    row["planned"] = min(planned_seeds(c) for c in cells)
    # a cell that ran but has no evaluation in this domain cannot be read there either
    row["missing"] = sorted(c for c in cells if (c, domain) not in values)
    found = [(diff, differences(values, diff, domain)) for diff in claim.differences]
    described = [
        _describe(d, diff, min(planned_seeds(c) for c in diff.cells), claim.bound, claim.null)
        for diff, d in found
        if d is not None
    ]
    row["differences"] = described
    row["n"] = min((x["n"] for x in described), default=0) if not row["missing"] else 0
    if row["missing"]:
        return row | {"verdict": NOT_RUN}
    ps = {k: [x[k] for x in described] for k in READINGS}
    tested = all(np.isfinite(p) for p in ps["p_better"])
    return row | {
        "p_better": max(ps["p_better"]) if tested else float("nan"),
        "p_worse": min(ps["p_worse"]) if tested else float("nan"),
        "p_equivalent": max(ps["p_equivalent"]) if tested else float("nan"),
        "power_now": min(x["power_now"] for x in described),
        "power_planned": min(x["power_planned"] for x in described),
        "verdict": BESIDE if domain == "mean" or kind != "claim" else None,
    }


def _adjust(rows: list[dict], runs: Runs) -> None:
    """Holm across the family's rows (the claims in math and in code) for each reading, then each
    row's verdict in inference.verdicts' order of readings, with C4's order condition."""
    family = [r for r in rows if r["verdict"] is None]
    for key in READINGS:
        adjusted = inf.holm([r[key] for r in family])
        for r, p in zip(family, adjusted):
            r[f"holm_{key.removeprefix('p_')}"] = p
    alpha = inf.ALPHA
    for r in family:
        better = r["holm_better"] < alpha
        note = ""
        if r["claim"] == "C4":
            r["order_after"], r["order_runs"] = order_after(runs, "f0.6/shift_only")
            if better and not r["order_after"] >= ORDER_AFTER_MIN:
                better = False
                note = f"better, but order after calibration {r['order_after']:.3f} < {ORDER_AFTER_MIN}"
        if better:
            r["verdict"] = inf.HOLDS
        elif r["holm_worse"] < alpha:
            r["verdict"] = inf.FAILS
        elif r["holm_equivalent"] < alpha:
            r["verdict"] = inf.EQUIVALENT
        else:
            r["verdict"] = inf.OPEN
        if r["verdict"] == inf.OPEN:
            needed = [x["seeds_needed"] for x in r["differences"] if x["seeds_needed"]]
            r["seeds_to_resolve"] = max(needed) if needed else None
            note = note or (f"{r['n']} pairs" if r["n"] < 2 else "")
        r["note"] = note


def _reached(table: pd.DataFrame, claim: Claim, domain: str) -> dict[str, str]:
    """{cell: "runs that reached teacher level / runs"} in `domain`: a run that never reached it
    counts as 2 × its budget (the rule), so a pair in which neither did reads as a ratio of 1;
    the table says how many runs that is."""
    cells = dict.fromkeys(c for diff in claim.differences for c in diff.cells)
    picked = table[table.domain == domain]  # steps_to_teacher's columns exist even with no run
    return {
        cell: f"{int(picked[picked.cell == cell].reached.sum())}/{int((picked.cell == cell).sum())}"
        for cell in cells
    }


def claims_v2_rows(runs: Runs) -> list[dict]:
    """Every claim in math, code and the two-domain mean (Holm-adjusted, with verdicts), then the
    explanatory flaw-0 rows (each cell minus OPD, intervals only)."""
    finals = per_seed(final_points(runs))
    reaching = steps_to_teacher(runs)
    steps = per_seed(log2_steps(reaching))
    rows = [
        _row(claim, steps if claim.steps else finals, domain)
        for claim in CLAIMS
        for domain in (*DOMAINS, "mean")
    ]
    by_steps = {claim.name: claim for claim in CLAIMS if claim.steps}
    for r in rows:
        if r["claim"] in by_steps and r["domain"] != "mean":
            r["reached"] = _reached(reaching, by_steps[r["claim"]], r["domain"])
    _adjust(rows, runs)
    for diff in EXPLANATORY:
        why = Claim(diff.label, "explanatory (flaw 0)", (diff,), bound=None)
        rows += [_row(why, finals, domain, kind="explanatory") for domain in (*DOMAINS, "mean")]
    return rows
