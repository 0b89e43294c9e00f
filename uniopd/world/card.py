"""The world card's measures: what a dial does to a student's pass counts (docs/world.md, "Version
6's dials"; benchmarks/world_v6_dials.py samples the counts). Pure functions of pass counts.

- The intraclass correlation of per-prompt pass rates says how much of the spread in pass counts
  is the prompts' own (1: a prompt is always or never solved) and how much sampling noise (0:
  every prompt has the same chance). World v5's habit student: about 0.03 on math.
- The share of single-outcome groups says how often a group of G rollouts gives an outcome
  reward nothing to compare (GRPO's advantage is 0 there).
"""

from __future__ import annotations

from collections.abc import Sequence

from uniopd.tasks.chains import stop_hazard_of
from uniopd.tasks.problem import Problem


def intraclass_correlation(pass_counts: Sequence[int], n: int) -> float:
    """ICC(1) of a one-way random-effects ANOVA over prompts, each sampled `n` times with a 0/1
    outcome; prompt i passed c_i times, p_i = c_i / n, N prompts, p̄ the mean of the p_i:

        MSB = n · Σ (p_i − p̄)² / (N − 1)           between prompts
        MSW = Σ n · p_i (1 − p_i) / (N (n − 1))     within a prompt (the outcomes' squared deviations)
        ICC = (MSB − MSW) / (MSB + (n − 1) · MSW)

    0 when every prompt has the same pass chance (the estimate scatters around 0), 1 when every
    prompt is always or never solved. NaN when it is undefined (fewer than 2 prompts or samples,
    or every outcome the same)."""
    count = len(pass_counts)
    if count < 2 or n < 2:
        return float("nan")
    rates = [c / n for c in pass_counts]
    mean = sum(rates) / count
    between = n * sum((p - mean) ** 2 for p in rates) / (count - 1)
    within = sum(n * p * (1 - p) for p in rates) / (count * (n - 1))
    denominator = between + (n - 1) * within
    return (between - within) / denominator if denominator else float("nan")


def single_outcome_share(pass_counts: Sequence[int], n: int) -> float:
    """The share of prompts whose n samples all pass or all fail."""
    return sum(c in (0, n) for c in pass_counts) / len(pass_counts) if pass_counts else 0.0


def expected_single_outcome_share(pass_counts: Sequence[int], n: int, group: int) -> float:
    """The expected share of groups of `group` rollouts with a single outcome, each prompt's pass
    chance taken as its measured rate (n samples): mean of p^G + (1 − p)^G."""
    if not pass_counts:
        return 0.0
    return sum((c / n) ** group + (1 - c / n) ** group for c in pass_counts) / len(pass_counts)


def design_pass_rate(problem: Problem, hazard: float | list[float], per_step: float = 1.0) -> float:
    """The pass chance a v6 habit student has on `problem` by construction: it quits at each of
    the problem's steps with its class's (or the one) `hazard`, and gets each step's content right
    with chance `per_step`."""
    chance = stop_hazard_of(problem, hazard)
    return ((1 - chance) * per_step) ** problem.meta["level"]
