"""The PPO clipped surrogate with asymmetric clipping and the teacher-student gap mask (METHOD 2)."""

from __future__ import annotations

import torch


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    teacher_logp: torch.Tensor | None = None,
    gap_threshold: float = 10.0,
    num_rollouts: int | None = None,
) -> tuple[torch.Tensor, dict]:
    """L = (1/N) sum_i (1/max(|m_i|,1)) sum_t m_it * l_it.

    l_it = max(-rho*A, -clip(rho, 1-eps_low, 1+eps_high)*A), rho = exp(logp - old_logp), and
    l_it = 0 where |logp - teacher_logp| >= c (the student is too far from the teacher there for
    the one-sample estimate to be trusted). Rows whose mask is all zero (rollouts balanced out)
    keep their slot in N, so masking a rollout never re-weights the others. `num_rollouts` is N
    when this call sees one micro-batch of a larger batch (defaults to the rows given).
    Returns (loss, stats) with the clip fraction and the fraction of tokens the gap mask removed.
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = -ratio * advantages
    clipped = -torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    per_token = torch.maximum(unclipped, clipped)
    token_mask = mask
    gap_masked = torch.zeros((), device=logp.device)
    if teacher_logp is not None:
        far = ((logp.detach() - teacher_logp).abs() >= gap_threshold) | ~torch.isfinite(
            teacher_logp
        )
        gap_masked = (far.float() * mask).sum() / mask.sum().clamp(min=1)
        token_mask = mask * (~far).to(mask.dtype)
        per_token = torch.where(far, torch.zeros_like(per_token), per_token)
    loss = rollout_mean_loss(per_token * token_mask, mask, num_rollouts)
    with torch.no_grad():
        was_clipped = (clipped > unclipped).float()
        stats = {
            "clip_frac": float((was_clipped * token_mask).sum() / token_mask.sum().clamp(min=1)),
            "gap_masked_frac": float(gap_masked),
        }
    return loss, stats


def rollout_mean_loss(
    per_token: torch.Tensor, mask: torch.Tensor, num_rollouts: int | None = None
) -> torch.Tensor:
    """(1/N) sum_i (1/max(|m_i|,1)) sum_t m_it * l_it: the token mean within a rollout (no length
    bias), the mean over rollouts, masked-out rollouts keeping their slot in N. Positions outside
    the mask may hold NaN (a failed teacher call) without reaching the result."""
    kept = torch.where(mask > 0, per_token, torch.zeros_like(per_token)) * mask
    per_rollout = kept.sum(-1) / mask.sum(-1).clamp(min=1)
    return per_rollout.sum() / (num_rollouts or per_token.shape[0])
