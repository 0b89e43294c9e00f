"""Outcome-guided margin calibration (METHOD 4.1 shift, 4.2 greedy mask).

The outcome reward is the anchor: within a unit (a prompt group, or the whole batch) correct
rollouts should out-return incorrect ones by at least a margin delta. The shift adds a constant
per rollout, so the token structure of the teacher signal inside a rollout is kept; the mask
instead drops the rollouts that break the order, keeping a minimum share of each side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import torch

from uniopd.algorithms.advantages import distillation_returns
from uniopd.algorithms.units import unit_index

# The names the experiment schema accepts are these very types (uniopd/config/uni_opd.py).
MarginMode = Literal["mean", "minmax"]
Direction = Literal["both", "correct_up", "incorrect_down"]
MODES, DIRECTIONS = get_args(MarginMode), get_args(Direction)


class MarginStats(NamedTuple):
    units: int  # units in the batch
    mixed: int  # units with both a correct and an incorrect rollout (the only ones touched)
    calibrated: int  # mixed units shifted (shift) or with a rollout dropped (mask)
    mean_shift: (
        float  # mean s over shifted units (shift); mean rollouts dropped per masked unit (mask)
    )


def _margin_ends(
    returns: torch.Tensor,
    is_c: torch.Tensor,
    is_w: torch.Tensor,
    units: torch.Tensor,
    n_units: int,
    mode: str,
):
    """Per unit: (hi, lo, mixed). mean: mean of C / mean of W; minmax: min of C / max of W."""

    def reduce(sel: torch.Tensor, how: str) -> torch.Tensor:
        out = torch.zeros(n_units, dtype=returns.dtype)
        return out.scatter_reduce(0, units[sel], returns[sel], reduce=how, include_self=False)

    n_c = torch.zeros(n_units).index_add_(0, units, is_c.float())
    n_w = torch.zeros(n_units).index_add_(0, units, is_w.float())
    if mode == "mean":
        hi, lo = reduce(is_c, "mean"), reduce(is_w, "mean")
    elif mode == "minmax":
        hi, lo = reduce(is_c, "amin"), reduce(is_w, "amax")
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return hi, lo, (n_c > 0) & (n_w > 0)


def margin_shift(
    advantages: torch.Tensor,
    mask: torch.Tensor,
    correct: torch.Tensor,
    group_ids: torch.Tensor,
    delta: float,
    mode: str = "mean",
    direction: str = "both",
    scope: str = "group",
) -> tuple[torch.Tensor, MarginStats]:
    """METHOD 4.1. Returns (calibrated advantages `[N, T]`, stats).

    Per mixed unit, gap = hi - lo of the distillation returns; if gap < delta every token of
    the unit's correct rollouts moves up and/or every token of its incorrect ones moves down so the
    gap becomes exactly delta. `mask` `[N, T]` is the token mask the returns are taken over;
    NaN in `correct` keeps a rollout out of the statistics and unshifted.
    """
    u = shift_needed(advantages, mask, correct, group_ids, delta, mode, direction, scope)
    shifted = u.shift > 0
    stats = MarginStats(
        u.n_units,
        int(u.mixed.sum()),
        int(shifted.sum()),
        float(u.shift[shifted].mean()) if shifted.any() else 0.0,
    )
    return apply_per_unit(advantages, mask, u, u.shift, direction), stats


@dataclass
class UnitShift:
    """Per mixed unit, the shift that would bring its gap up to δ (`shift` [U]: max(δ − gap, 0),
    0 for unmixed units), with what applying a per-unit amount needs."""

    shift: torch.Tensor
    mixed: torch.Tensor
    units: torch.Tensor  # [N] each rollout's unit
    n_units: int
    is_c: torch.Tensor
    is_w: torch.Tensor


def shift_needed(advantages, mask, correct, group_ids, delta, mode, direction, scope) -> UnitShift:
    """The margin shift's measurement (METHOD 4.1), shared by the shift and its controls."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    returns = distillation_returns(advantages, mask).float()
    units, n_units = unit_index(group_ids, scope)
    is_c, is_w = correct == 1.0, correct == 0.0
    hi, lo, mixed = _margin_ends(returns, is_c, is_w, units, n_units, mode)
    gap = hi - lo
    s = torch.where(mixed & (gap < delta), delta - gap, torch.zeros_like(gap))
    return UnitShift(s, mixed, units, n_units, is_c, is_w)


def apply_per_unit(advantages, mask, u: UnitShift, amount: torch.Tensor, direction: str):
    """Every token of a unit's correct rollouts up and/or of its incorrect ones down by the unit's
    `amount` [U], split as `direction` says (both: half each way)."""
    up = {"correct_up": 1.0, "incorrect_down": 0.0, "both": 0.5}[direction]
    per_rollout = amount[u.units] * (up * u.is_c.float() - (1.0 - up) * u.is_w.float())
    return advantages + per_rollout.to(advantages.dtype)[:, None] * mask


def margin_mask(
    advantages: torch.Tensor,
    mask: torch.Tensor,
    correct: torch.Tensor,
    group_ids: torch.Tensor,
    delta: float,
    mode: str = "mean",
    scope: str = "group",
    min_retain_ratio: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor, MarginStats]:
    """METHOD 4.2. Returns (advantages with dropped rollouts zeroed `[N, T]`, dropped `[N]`, stats).

    Per mixed unit, while gap < delta: the candidates are dropping the lowest-return correct
    rollout and the highest-return incorrect one, each allowed while more than
    max(1, floor(min_retain_ratio * |side|)) of that side remain; take the one that raises the gap
    most (the correct side on a tie); stop when neither raises it or neither is allowed.
    Dropped rollouts keep their slot in the loss denominators.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    returns = distillation_returns(advantages, mask).float()
    units, n_units = unit_index(group_ids, scope)
    is_c, is_w = correct == 1.0, correct == 0.0
    dropped = torch.zeros(len(returns), dtype=torch.bool)
    mixed = calibrated = n_dropped = 0
    for u in range(n_units):
        in_u = units == u
        c = sorted((in_u & is_c).nonzero().flatten().tolist(), key=lambda i: returns[i])
        w = sorted((in_u & is_w).nonzero().flatten().tolist(), key=lambda i: -returns[i])
        if not c or not w:
            continue
        mixed += 1
        min_c = max(1, math.floor(min_retain_ratio * len(c)))
        min_w = max(1, math.floor(min_retain_ratio * len(w)))
        gap = _gap(returns, c, w, mode)
        before = len(c) + len(w)
        while gap < delta:
            options = []
            if len(c) > min_c:
                options.append((_gap(returns, c[1:], w, mode), "c"))
            if len(w) > min_w:
                options.append((_gap(returns, c, w[1:], mode), "w"))
            if not options:
                break
            best_gap, side = max(options, key=lambda o: o[0])  # max keeps the first on a tie
            if best_gap <= gap:
                break
            if side == "c":
                dropped[c.pop(0)] = True
            else:
                dropped[w.pop(0)] = True
            gap = best_gap
        if len(c) + len(w) < before:
            calibrated += 1
            n_dropped += before - len(c) - len(w)
    stats = MarginStats(n_units, mixed, calibrated, n_dropped / calibrated if calibrated else 0.0)
    return advantages * (~dropped).to(advantages.dtype)[:, None], dropped, stats


def _gap(returns: torch.Tensor, c: list[int], w: list[int], mode: str) -> float:
    rc, rw = returns[c], returns[w]
    if mode == "mean":
        return float(rc.mean() - rw.mean())
    return float(rc.min() - rw.max())
