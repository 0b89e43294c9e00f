"""Per-token advantages: the OPD teacher log-ratio, the GRPO group-normalised outcome, and returns.

Shapes: `[N, T]` for per-token tensors (N rollouts, T response columns), `[N]` per rollout.
"""

from __future__ import annotations

import torch


def opd_advantages(
    teacher_logp: torch.Tensor, student_logp: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """METHOD 2: A_t = log piT(o_t) - log pi_old(o_t), a one-sample reverse-KL estimate, `[N, T]`.

    Stop-gradient, no discount, no normalisation. A position where either log-prob is not finite
    (a failed teacher call, say) gets advantage 0, and `opd_loss_mask` drops it from the loss, so
    one bad number cannot poison the batch.
    """
    finite = torch.isfinite(teacher_logp) & torch.isfinite(student_logp)
    adv = torch.where(finite, teacher_logp - student_logp, torch.zeros_like(teacher_logp))
    return (adv * opd_loss_mask(teacher_logp, student_logp, mask)).detach()


def opd_loss_mask(
    teacher_logp: torch.Tensor, student_logp: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The response mask without the positions whose teacher or student log-prob is not finite."""
    finite = torch.isfinite(teacher_logp) & torch.isfinite(student_logp)
    return mask * finite.to(mask.dtype)


def grpo_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6, unbiased: bool = True
) -> torch.Tensor:
    """METHOD 5: (R_i - mean_group R) / (std_group R + eps), one value per rollout `[N]`.

    Ungraded rollouts (NaN reward) count as 0 reward, the same convention as online balancing
    treating None as incorrect. std is the unbiased (n - 1) std of the group, as released;
    `unbiased=False` gives the population std (advantages larger by sqrt(G / (G - 1))). A group
    where every rollout scores the same (a one-rollout group included) gives exactly 0.
    """
    r = torch.nan_to_num(rewards.float(), nan=0.0)
    _, inverse = torch.unique(group_ids, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    count = torch.zeros(n_groups, dtype=r.dtype).index_add_(0, inverse, torch.ones_like(r))
    mean = torch.zeros(n_groups, dtype=r.dtype).index_add_(0, inverse, r) / count
    squares = torch.zeros(n_groups, dtype=r.dtype).index_add_(0, inverse, (r - mean[inverse]) ** 2)
    var = squares / ((count - 1).clamp(min=1) if unbiased else count)
    std = var.sqrt()[inverse]
    centred = r - mean[inverse]
    # a group with one outcome carries no signal: 0 exactly, even with eps = 0
    return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))


def distillation_returns(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """METHOD 2: G_i = token MEAN of a rollout's advantages (removes the length bias), `[N]`."""
    return (advantages * mask).sum(-1) / mask.sum(-1).clamp(min=1)
