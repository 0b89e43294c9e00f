"""Sharding the student over the data-parallel processes (FSDP2, torch's `fully_shard`): each
process holds 1/P of the weights, gradients and Adam state, for students that do not fit one
device. Teachers are never sharded (no optimizer, half precision).

Each decoder layer is one shard unit (the architecture's `_no_split_modules`), the model the
root. Gradients must come out summed across processes, not averaged, since the loss is already
divided by the global rollout count (uniopd.engine.distributed): `gradient_scale`. Every process must run the same number of
forward passes, so generation is lock-stepped (`synced_gpus`) and the update pads its
micro-batches to the same count on every process (uniopd.loop.update).

Under a mixed precision (bf16-mixed) the shards stay float32 (the master weights, so Adam's state
is float32 too) and FSDP gathers them in the compute dtype, reducing gradients in float32
(torch 2.13's `MixedPrecisionPolicy`, torch/distributed/fsdp/_fully_shard/_fsdp_api.py): without
it every forward, and every decoded token of a rollout, gathers float32 weights (16 GB for a 4B
student). While the `hf` engine decodes, the layers keep their gathered weights between tokens
(`hold_gathered`): one gather per `generate` call instead of one per token.

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
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard


def is_sharded(model) -> bool:
    return isinstance(model, FSDPModule)


def shard_model(
    model: torch.nn.Module,
    device: torch.device,
    world: int,
    compute_dtype: torch.dtype | None = None,
) -> torch.nn.Module:
    """`compute_dtype`: the precision's autocast dtype (bf16 under bf16-mixed, None under fp32):
    what the weights are gathered and computed in; the shards keep the dtype they were loaded in
    and gradients are reduced in float32. Each layer's inputs are cast to it too (torch's
    default, as in torchtitan), so the residual stream between layers is bf16, as in Megatron
    and vLLM (an unsharded bf16-mixed student keeps it in float32)."""
    mesh = init_device_mesh(device.type, (world,))
    policy = MixedPrecisionPolicy(
        param_dtype=compute_dtype, reduce_dtype=torch.float32 if compute_dtype else None
    )
    names = set(getattr(model, "_no_split_modules", None) or [])
    units = [m for m in model.modules() if type(m).__name__ in names]
    if not units:
        raise ValueError(
            f"{type(model).__name__}: no decoder layers to shard (its _no_split_modules names "
            f"{sorted(names) or 'none'})"
        )
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def hold_gathered(model, hold: bool) -> None:
    """hold=True: a sharded model's layers keep their gathered weights after each forward, so
    decoding gathers each layer once, not once per token (the price: one whole copy of the
    weights in the compute dtype while it holds, 8 GB in bf16 for a 4B student); hold=False:
    back to gathering per forward, the held copies freed. Nothing for an unsharded model. The
    root keeps its own setting (torch never reshards the root after forward)."""
    if not is_sharded(model):
        return
    for unit in model.modules():
        if isinstance(unit, FSDPModule) and unit is not model:
            unit.set_reshard_after_forward(not hold, recurse=False)
            if not hold:
                unit.reshard()


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
