"""The optimizer and learning-rate schedule of a run (METHOD 2's reference defaults: AdamW,
linear warm-up, then constant or cosine), and the per-phase step timer."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch


class PhaseTimer:
    """Seconds spent per phase of a step, for the per-phase timing line in metrics.jsonl."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def lr_lambda(warmup: int, total: int, schedule: str):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        return 1.0

    return f


def make_optimizer(model: torch.nn.Module, train_cfg):
    """(AdamW, LambdaLR) as the experiment's `train` section says."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],  # a LoRA student: the adapter only
        lr=train_cfg.lr,
        betas=(train_cfg.betas[0], train_cfg.betas[1]),
        weight_decay=train_cfg.weight_decay,
    )
    schedule = lr_lambda(train_cfg.warmup_steps, train_cfg.steps, train_cfg.lr_schedule)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
