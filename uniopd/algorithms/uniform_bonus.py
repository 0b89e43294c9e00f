"""The margin shift's control (study v2, docs/study.md): the same outcome bonus, given to every
mixed unit whether or not its teacher mis-orders it.

The margin shift (METHOD 4.1) moves a unit's correct rollouts up and its incorrect ones down by
s = δ − gap, and only where gap < δ. That is two things at once: an outcome bonus (correct above
incorrect, whatever the teacher says) and a condition (only where the order is broken). This
control keeps the first and drops the second: every mixed unit gets one bonus b, by default the
mean of the shifts the margin shift would give this batch's mixed units (those it leaves alone
counted as 0), so both move the same total advantage and only where it goes differs. A unit with a
single outcome has no contrast to add, as for the shift.
"""

from __future__ import annotations

import torch

from uniopd.algorithms.advantages import distillation_returns
from uniopd.algorithms.margin import DIRECTIONS, MarginStats, _margin_ends
from uniopd.algorithms.units import unit_index


def uniform_bonus(
    advantages: torch.Tensor,
    mask: torch.Tensor,
    correct: torch.Tensor,
    group_ids: torch.Tensor,
    delta: float,
    mode: str = "mean",
    direction: str = "both",
    scope: str = "group",
    bonus: float | None = None,
) -> tuple[torch.Tensor, MarginStats, float]:
    """Returns (advantages with the bonus `[N, T]`, stats, the share of mixed units the margin
    shift would have moved). `bonus` None: matched to the margin shift (the mean over mixed units
    of max(δ − gap, 0)); a number: that bonus. `direction` splits it as the shift does (both: half
    up for correct, half down for incorrect). NaN in `correct`: out of the statistics, unmoved."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    returns = distillation_returns(advantages, mask).float()
    units, n_units = unit_index(group_ids, scope)
    is_c, is_w = correct == 1.0, correct == 0.0
    hi, lo, mixed = _margin_ends(returns, is_c, is_w, units, n_units, mode)
    shift = torch.where(mixed & (hi - lo < delta), delta - (hi - lo), torch.zeros_like(hi))
    n_mixed = int(mixed.sum())
    would = float((shift > 0).sum()) / n_mixed if n_mixed else 0.0
    if bonus is None:
        bonus = float(shift[mixed].mean()) if n_mixed else 0.0
    b = torch.where(mixed, torch.full_like(hi, bonus), torch.zeros_like(hi))
    up = {"correct_up": 1.0, "incorrect_down": 0.0, "both": 0.5}[direction]
    per_rollout = b[units] * (up * is_c.float() - (1.0 - up) * is_w.float())
    stats = MarginStats(n_units, n_mixed, n_mixed if bonus > 0 else 0, bonus if n_mixed else 0.0)
    return advantages + per_rollout.to(advantages.dtype)[:, None] * mask, stats, would
