"""The algorithm core: pure functions over tensors (no models, files or config objects).

This is where the paper lives; every function is tested against the definitions of docs/method.md.
Conventions: advantages and masks `[N, T]`; `correct` `[N]` float 1.0 / 0.0 / NaN (ungraded);
`group_ids` `[N]` int; mode "mean" / "minmax"; direction "correct_up" / "incorrect_down" /
"both"; scope "group" / "global".
"""

from uniopd.algorithms.advantages import (
    distillation_returns,
    grpo_advantages,
    opd_advantages,
    opd_loss_mask,
)
from uniopd.algorithms.difficulty_balance import difficulty_balance, difficulty_bins
from uniopd.algorithms.difficulty_skew import difficulty_skew
from uniopd.algorithms.divergence import generalized_jsd
from uniopd.algorithms.extrapolation import exopd_advantages
from uniopd.algorithms.margin import MarginStats, margin_mask, margin_shift
from uniopd.algorithms.online_balance import online_balance
from uniopd.algorithms.order_consistency import OrderConsistency, order_consistency
from uniopd.algorithms.ppo_loss import ppo_clip_loss, rollout_mean_loss
from uniopd.algorithms.topk_support import (
    first_occurrence_special_mask,
    teacher_topk,
    topk_support_loss,
)

__all__ = [
    "MarginStats",
    "OrderConsistency",
    "difficulty_balance",
    "difficulty_bins",
    "difficulty_skew",
    "distillation_returns",
    "exopd_advantages",
    "first_occurrence_special_mask",
    "generalized_jsd",
    "grpo_advantages",
    "margin_mask",
    "margin_shift",
    "online_balance",
    "opd_advantages",
    "opd_loss_mask",
    "order_consistency",
    "ppo_clip_loss",
    "rollout_mean_loss",
    "teacher_topk",
    "topk_support_loss",
]
