"""The optimizer and learning-rate schedule of a run (METHOD 2's reference defaults: AdamW,
linear warm-up, then constant or cosine), and the per-phase step timer.

Weight decay applies to every trainable parameter by default; `train.decay_norms_and_biases:
false` puts it where the Uni-OPD release (Megatron) does: on weight matrices, not on biases or norm
weights (`decays`)."""

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


def decays(name: str, param: torch.Tensor) -> bool:
    """Whether weight decay applies to a parameter: Megatron-LM's rule (megatron/core/optimizer/
    __init__.py, `_get_param_groups`: no decay for `.bias` names or 1-D parameters), plus any
    parameter named like a norm whatever its shape. Shrinking a norm's gain or a bias towards 0
    is not the regularisation weight decay is for."""
    return param.dim() > 1 and not name.endswith("bias") and "norm" not in name.lower()


def parameter_groups(model: torch.nn.Module, weight_decay: float, everywhere: bool) -> list[dict]:
    """AdamW parameter groups of the trainable parameters (a LoRA student: the adapter only):
    one decayed group of all of them when `everywhere`, else the decayed ones and the rest
    (weight decay 0); an empty group is left out."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if everywhere:
        return [{"params": [p for _, p in trainable], "weight_decay": weight_decay}]
    groups = [
        {"params": [p for n, p in trainable if decays(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in trainable if not decays(n, p)], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(model: torch.nn.Module, train_cfg):
    """(AdamW, LambdaLR) as the experiment's `train` section says."""
    optimizer = torch.optim.AdamW(
        parameter_groups(model, train_cfg.weight_decay, train_cfg.decay_norms_and_biases),
        lr=train_cfg.lr,
        betas=(train_cfg.betas[0], train_cfg.betas[1]),
        weight_decay=train_cfg.weight_decay,
    )
    schedule = lr_lambda(train_cfg.warmup_steps, train_cfg.steps, train_cfg.lr_schedule)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
