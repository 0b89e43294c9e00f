"""Online correctness-aware balancing (METHOD 3.2): a keep mask over the rollouts of a batch.

Within each unit (a prompt group, or the whole batch), the majority outcome is masked down to the
target ratio r = correct : incorrect. Masked rollouts get loss mask 0 but keep their slot in N.
"""

from __future__ import annotations

import math

import torch

from uniopd.algorithms.units import unit_index


def online_balance(
    correct: torch.Tensor,
    group_ids: torch.Tensor,
    ratio: float,
    scope: str = "group",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Keep mask `[N]` (bool). `correct` holds 1.0 / 0.0 / NaN; NaN (ungraded) counts as incorrect.

    The two ends come first, as released: r = 0 masks every correct rollout and r = inf every
    incorrect one, in every unit, all-correct and all-wrong ones included (the floor rule alone
    would keep them, since it never empties a side). Otherwise, for a unit with n_c correct and
    n_w incorrect rollouts (both > 0; one-outcome units are kept whole): want_c = floor(n_w * r),
    want_w = floor(n_c / r); mask n_c - want_c random correct rollouts if that leaves at least
    one, else n_w - want_w incorrect ones if that leaves at least one.
    """
    if ratio < 0 or math.isnan(ratio):
        raise ValueError(f"ratio must be >= 0 (inf allowed), got {ratio}")
    is_correct = correct == 1.0  # NaN compares False: ungraded counts as incorrect
    keep = torch.ones_like(is_correct)
    units, n_units = unit_index(group_ids, scope)
    for u in range(n_units):
        idx = (units == u).nonzero().flatten()
        c_idx, w_idx = idx[is_correct[idx]], idx[~is_correct[idx]]
        n_c, n_w = len(c_idx), len(w_idx)
        if ratio == 0:  # before the one-outcome skip (METHOD 3.2)
            keep[c_idx] = False
            continue
        if math.isinf(ratio):
            keep[w_idx] = False
            continue
        if n_c == 0 or n_w == 0:
            continue
        want_c, want_w = math.floor(n_w * ratio), math.floor(n_c / ratio)
        if n_c > want_c >= 1:
            drop = c_idx[torch.randperm(n_c, generator=generator)[: n_c - want_c]]
        elif n_w > want_w >= 1:
            drop = w_idx[torch.randperm(n_w, generator=generator)[: n_w - want_w]]
        else:
            continue
        keep[drop] = False
    return keep
