"""This process's place among the data-parallel processes of a run, and the collectives the loop
needs. One process (no launcher) is the world of size 1, where every collective is the identity.

Processes are started by accelerate's launcher (`uniopd run --nproc N`, or `accelerate launch -m
uniopd run ...`) and joined through accelerate's `PartialState`: NCCL on GPUs, gloo on CPUs.

Gradients are summed, not averaged: every process's loss is already divided by the global
rollout count (METHOD 2's denominator), so the sum over processes is the one-process gradient.
They are summed once per optimizer step, after all micro-batches, bucket by bucket
(`GRAD_BUCKET_BYTES`, as DDP's reducer does): a flat copy of every gradient would add the size of
the whole model again (16 GB in float32 for a 4B student).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

# bytes of gradients per all-reduce (DDP's buckets are 25 MB): large enough to keep the links
# busy, small beside the model
GRAD_BUCKET_BYTES = 32 * 2**20


def grad_buckets(grads: list[torch.Tensor], bucket_numel: int):
    """The gradients as consecutive buckets of at most `bucket_numel` elements, each a list of
    (gradient, start, stop) ranges of its flattened elements; a gradient larger than a bucket
    spans several. In order, so concatenating every bucket gives the flat gradient vector."""
    bucket: list[tuple[torch.Tensor, int, int]] = []
    filled = 0
    for g in grads:
        start = 0
        while start < g.numel():
            stop = min(g.numel(), start + bucket_numel - filled)
            bucket.append((g, start, stop))
            filled += stop - start
            start = stop
            if filled == bucket_numel:
                yield bucket
                bucket, filled = [], 0
    if bucket:
        yield bucket


def launched() -> bool:
    """Whether a launcher started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Dist:
    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank, self.world, self.local_rank = rank, world, local_rank

    @classmethod
    def from_env(cls, cpu: bool, timeout_s: float = 7200.0) -> Dist:
        """The world the launcher set up (size 1 when not launched). `timeout_s` bounds how long a
        collective waits for a live but stuck peer before the process fails instead of hanging
        (a run's `distributed_timeout_s`; a dead peer is the launcher's business: it stops the
        others within seconds)."""
        if not launched():
            return cls()
        from accelerate import PartialState
        from accelerate.utils import InitProcessGroupKwargs

        kwargs = InitProcessGroupKwargs(timeout=timedelta(seconds=timeout_s)).to_kwargs()
        state = PartialState(cpu=cpu, **kwargs)
        return cls(state.process_index, state.num_processes, state.local_process_index)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def device(self, base: torch.device) -> torch.device:
        """Each process its own GPU (the launcher's local rank); CPU is shared."""
        if base.type == "cuda" and self.active:
            return torch.device("cuda", self.local_rank)
        return base

    def shard(self, items: list) -> list:
        """This process's contiguous share of `items` (the length divides by the world)."""
        if not self.active:
            return items
        n = len(items) // self.world
        return items[self.rank * n : (self.rank + 1) * n]

    # ---------------------------------------------------------------- collectives
    def sum_grads(self, params) -> None:
        """Every process's gradients summed in place, in float32 whatever their dtype (a bf16
        gradient is summed in float32 and rounded once), through one reused buffer of at most
        `GRAD_BUCKET_BYTES`: the only memory the reduction adds."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        bucket_numel = GRAD_BUCKET_BYTES // 4
        total = sum(g.numel() for g in grads)
        buffer = torch.empty(min(bucket_numel, total), dtype=torch.float32, device=grads[0].device)
        for bucket in grad_buckets(grads, bucket_numel):
            ranges = []  # (the gradient's elements, the buffer's), copied by copy_: no temporaries
            offset = 0
            for g, start, stop in bucket:
                ranges.append((g.view(-1)[start:stop], buffer[offset : offset + stop - start]))
                offset += stop - start
            for grad, room in ranges:
                room.copy_(grad)
            dist.all_reduce(buffer[:offset])
            for grad, room in ranges:
                grad.copy_(room)

    def sum(self, value: float) -> float:
        return self._reduce(value, dist.ReduceOp.SUM)

    def max(self, value: float) -> float:
        return self._reduce(value, dist.ReduceOp.MAX)

    def _reduce(self, value: float, op) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=op)
        return float(t)

    def gather_rows(self, t: torch.Tensor, pad_value: float = 0.0, left: bool = False):
        """Every process's rows of `t`, in rank order; dims after the first are padded to the
        widest process's (on the left for left-padded prompts)."""
        if not self.active:
            return t
        from accelerate.utils import gather, pad_across_processes

        device, dtype = t.device, t.dtype
        moved = t.to(self._comm_device(), torch.uint8 if dtype == torch.bool else dtype)
        for d in range(1, t.dim()):
            moved = pad_across_processes(moved, dim=d, pad_index=pad_value, pad_first=left)
        return gather(moved.contiguous()).to(device, dtype)

    def gather_objects(self, items: list) -> list:
        if not self.active:
            return items
        out: list = [None] * self.world
        dist.all_gather_object(out, items)
        return [x for part in out for x in part]

    def broadcast_object(self, obj):
        """rank 0's `obj` on every process."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group together: a process that exits while a peer still talks to it
        can bring the peer down (gloo aborts on a connection closed mid-use)."""
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return (
            torch.device("cuda", torch.cuda.current_device())
            if dist.get_backend() == "nccl"
            else torch.device("cpu")
        )
