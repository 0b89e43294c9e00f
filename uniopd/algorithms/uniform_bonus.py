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

from uniopd.algorithms.margin import MarginStats, apply_per_unit, shift_needed


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
    u = shift_needed(advantages, mask, correct, group_ids, delta, mode, direction, scope)
    n_mixed = int(u.mixed.sum())
    would = float((u.shift > 0).sum()) / n_mixed if n_mixed else 0.0
    if bonus is None:
        bonus = float(u.shift[u.mixed].mean()) if n_mixed else 0.0
    b = torch.where(u.mixed, torch.full_like(u.shift, bonus), torch.zeros_like(u.shift))
    stats = MarginStats(u.n_units, n_mixed, n_mixed if bonus > 0 else 0, bonus if n_mixed else 0.0)
    return apply_per_unit(advantages, mask, u, b, direction), stats, would
