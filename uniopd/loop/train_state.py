"""Everything besides the weights that a resumed run needs to end where an uninterrupted one would:
step, optimizer, scheduler, precision (loss scale), data position, EMA teachers and every RNG."""

from __future__ import annotations

import random

import numpy as np
import torch

from uniopd.engine.fsdp import load_optimizer_state


def collect_state(
    step: int, optimizer_state: dict, scheduler, precision, sampler, ema: dict
) -> dict:
    """`optimizer_state` is passed in: a sharded student's is gathered whole by the caller first."""
    return {
        "precision": precision.state_dict(),
        "step": step,
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(),
        "ema_teachers": {ref: model.state_dict() for ref, model in ema.items()},
        "rng": {
            "torch": torch.random.get_rng_state(),
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        },
    }


def restore_state(
    state: dict, student, optimizer, scheduler, precision, sampler, ema: dict, sharded: bool
) -> int:
    """Loads `state` into the run's parts and returns the step it was taken at."""
    if sharded:  # the whole-model optimizer state, re-sharded over this run's processes
        load_optimizer_state(student, optimizer, state["optimizer"])
    else:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    precision.load_state_dict(state.get("precision", {}))
    sampler.load_state_dict(state["sampler"])
    for ref, weights in state.get("ema_teachers", {}).items():
        ema[ref].load_state_dict(weights)
    torch.random.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return state["step"]
