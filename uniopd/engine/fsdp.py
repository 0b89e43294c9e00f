"""Sharding the student over the data-parallel processes (FSDP2, torch's `fully_shard`): each
process holds 1/P of the weights, gradients and Adam state, for students that do not fit one
device. Teachers are never sharded (no optimizer, half precision).

Each decoder layer is one shard unit (the architecture's `_no_split_modules`), the model the
root. Gradients must come out summed across processes, not averaged, since the loss is already
divided by the global rollout count (uniopd.engine.distributed): `gradient_scale`. Every process must run the same number of
forward passes, so generation is lock-stepped (`synced_gpus`) and the update pads its
micro-batches to the same count on every process (uniopd.loop.update).

accelerate's FSDP plugin only engages on GPU process groups; `fully_shard` itself (what the
plugin calls) runs on gloo as well, which is how this module is tested on CPUs.
"""

from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard


def is_sharded(model) -> bool:
    return isinstance(model, FSDPModule)


def shard_model(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    mesh = init_device_mesh(device.type, (world,))
    names = set(getattr(model, "_no_split_modules", None) or [])
    units = [m for m in model.modules() if type(m).__name__ in names]
    if not units:
        raise ValueError(
            f"{type(model).__name__}: no decoder layers to shard (its _no_split_modules names "
            f"{sorted(names) or 'none'})"
        )
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def gradient_scale(model, world: int) -> float:
    """What a process's loss is multiplied by before backward so that gradients come out summed
    over processes: FSDP averages them (a divide factor of 1 would need PREMUL_SUM, which gloo
    lacks), and each process's loss is already its share of the global one."""
    return float(world) if is_sharded(model) else 1.0


def full_state_dict(model) -> dict:
    """The whole model's weights on the CPU of every process (a collective: all call it)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def full_optimizer_state(model, optimizer) -> dict:
    """The optimizer's state for the whole model (a collective), loadable without sharding."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model, optimizer, state: dict) -> None:
    """A whole-model optimizer state into this process's shard of it."""
    set_optimizer_state_dict(
        model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True)
    )


def local_value(t: torch.Tensor) -> torch.Tensor:
    """A sharded tensor's whole value (the gradient norm of sharded parameters), else `t`."""
    full = getattr(t, "full_tensor", None)
    return full() if full is not None else t
