"""Order consistency (METHOD 4): does every correct rollout out-return every incorrect one of its prompt?"""

from __future__ import annotations

from typing import NamedTuple

import torch


class OrderConsistency(NamedTuple):
    fraction: float | None  # ordered pairs / pairs; None when the batch has no mixed group
    pairs: int  # (correct, incorrect) pairs within groups
    mean_gap: float | None  # mean over those pairs of G(correct) - G(incorrect)


def order_consistency(
    returns: torch.Tensor, correct: torch.Tensor, group_ids: torch.Tensor
) -> OrderConsistency:
    """Over all (tau+, tau-) pairs of the same group: the fraction with G(tau+) >= G(tau-).

    `returns` `[N]` (distillation returns), `correct` `[N]` 1.0 / 0.0 / NaN (NaN rollouts are in
    no pair), `group_ids` `[N]`.
    """
    same = group_ids[:, None] == group_ids[None, :]
    pairs_N_N = same & (correct == 1.0)[:, None] & (correct == 0.0)[None, :]
    n = int(pairs_N_N.sum())
    if n == 0:
        return OrderConsistency(None, 0, None)
    diff = (returns[:, None] - returns[None, :])[pairs_N_N]
    return OrderConsistency(float((diff >= 0).float().mean()), n, float(diff.mean()))
