"""One OPD policy update on a fixed batch, the way several tests take it: the experiment config
of a student with one math teacher, and `PolicyUpdate` with every rollout kept, no calibration,
groups of 4 and no rewards."""

import torch

from uniopd.config import ExperimentConfig
from uniopd.loop.update import PolicyUpdate


def opd_config(student, teacher, **train) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "name": "opd-step",
            "student": str(student),
            "teachers": {"math": str(teacher)},
            "data": {"train": ["builtin:math/train"]},
            "train": {"warmup_steps": 0, **train},
        }
    )


def opd_update(student, optimizer, batch, scored, cfg, precision=None):
    n = batch.input_ids_N_L.shape[0]
    update = PolicyUpdate(
        student, optimizer, cfg.method.objectives(), cfg.train, precision=precision
    )
    return update(
        batch,
        scored,
        torch.zeros(n),
        torch.arange(n) // 4,
        torch.ones(n, dtype=torch.bool),
        torch.zeros(n),
    )
