"""The algorithm core: pure functions over tensors (no models, files or config objects).

This is where the paper lives; every function is tested against METHOD.md's definitions.
"""

from uniopd.algorithms.advantages import (
    OBJECTIVES,
    distillation_returns,
    grpo_advantages,
    opd_advantages,
)
from uniopd.algorithms.ppo_loss import ppo_clip_loss

__all__ = [
    "OBJECTIVES",
    "distillation_returns",
    "grpo_advantages",
    "opd_advantages",
    "ppo_clip_loss",
]
