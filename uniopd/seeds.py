"""Every seed a run derives from its `seed`, defined once.

Per-step streams (rollout sampling, online balancing, the advantage pairs logged) are seeded from
(seed, step) rather than drawn from one running generator, so a resumed run reproduces an
uninterrupted one exactly from any checkpoint.
"""

from __future__ import annotations

import random

import numpy as np
import torch

PAIRS_OFFSET = 7  # the logged advantage pairs draw from their own stream, not the rollouts'
RANK_OFFSET = 100_003  # data-parallel process r samples its rollouts from stream r * RANK_OFFSET


def step_seed(seed: int, step: int, offset: int = 0) -> int:
    return seed * 1_000_003 + step + offset


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
