"""Order consistency (METHOD 4): does every correct rollout out-return every incorrect one of its prompt?"""

from __future__ import annotations

from typing import NamedTuple

import torch


class OrderConsistency(NamedTuple):
    fraction: float | None  # ordered pairs / pairs; None when the batch has no mixed group
    pairs: int  # (correct, incorrect) pairs within groups
    mean_gap: float | None  # mean over those pairs of G(correct) - G(incorrect)
    # group level: the fraction of mixed groups whose worst correct rollout out-returns (or ties)
    # their best incorrect one, i.e. whose every pair is ordered (the paper's strict margin >= 0)
    group_fraction: float | None = None
    groups: int = 0  # mixed groups


def order_consistency(
    returns: torch.Tensor, correct: torch.Tensor, group_ids: torch.Tensor
) -> OrderConsistency:
    """Over all (tau+, tau-) pairs of the same group: the fraction with G(tau+) >= G(tau-); and
    over the mixed groups: the fraction with min_{C} G >= max_{W} G.

    `returns` `[N]` (distillation returns), `correct` `[N]` 1.0 / 0.0 / NaN (NaN rollouts are in
    no pair: callers set NaN for rollouts that have no return to compare), `group_ids` `[N]`.
    """
    is_c, is_w = correct == 1.0, correct == 0.0
    same = group_ids[:, None] == group_ids[None, :]
    pairs_N_N = same & is_c[:, None] & is_w[None, :]
    n = int(pairs_N_N.sum())
    if n == 0:
        return OrderConsistency(None, 0, None)
    diff = (returns[:, None] - returns[None, :])[pairs_N_N]
    _, units = torch.unique(group_ids, return_inverse=True)
    n_units = int(units.max()) + 1
    r = returns.float()

    def reduce(sel: torch.Tensor, how: str) -> torch.Tensor:
        out = torch.zeros(n_units, dtype=r.dtype, device=r.device)
        return out.scatter_reduce(0, units[sel], r[sel], reduce=how, include_self=False)

    def count(sel: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n_units, device=r.device).index_add_(0, units, sel.float())

    mixed = (count(is_c) > 0) & (count(is_w) > 0)
    ordered = (reduce(is_c, "amin") >= reduce(is_w, "amax")) & mixed
    n_mixed = int(mixed.sum())
    return OrderConsistency(
        float((diff >= 0).float().mean()),
        n,
        float(diff.mean()),
        float(ordered.sum()) / n_mixed,
        n_mixed,
    )
