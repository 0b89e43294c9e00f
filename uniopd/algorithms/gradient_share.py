"""Each outcome's share of a step's policy gradient (study v2's C3 ratio sweep, docs/study.md):
how much of the update the correct and the incorrect rollouts drive once online balancing has
masked some of them.

The loss (METHOD 2, `rollout_mean_loss`) weighs token t of rollout i by A_it · m_it / (N·|m_i|) in
its gradient with respect to log π. The share is Σ over one outcome's rollouts of
Σ_t |A_it| m_it / |m_i|, over the same sum for every graded rollout: the weight each outcome puts
on the log-likelihood gradients at the first epoch (ratio 1, nothing clipped). It is a proxy: it
weighs every token's ∇ log π alike, which per-sample gradient norms would not (too costly each
step). Ungraded rollouts (NaN) are in neither share.
"""

from __future__ import annotations

import torch


def gradient_share(
    advantages_N_T: torch.Tensor, mask_N_T: torch.Tensor, correct_N: torch.Tensor
) -> tuple[float, float] | None:
    """(correct's share, incorrect's share) of the summed |advantage| weights, summing to 1; None
    when no graded rollout carries any weight (nothing to share)."""
    weight_N = (advantages_N_T.abs() * mask_N_T).sum(-1) / mask_N_T.sum(-1).clamp(min=1)
    weight_N = weight_N.float().cpu()
    correct_N = correct_N.float().cpu()
    c = float(weight_N[correct_N == 1.0].sum())
    w = float(weight_N[correct_N == 0.0].sum())
    if not c + w > 0:
        return None
    return c / (c + w), w / (c + w)
