"""The data-parallel gradient sum (Dist.sum_grads) against the flat one it replaced, in however
many processes launched this script:

    accelerate launch --multi_gpu --num_processes 2 tests/dp/sum_grads.py OUT

Each process makes gradients of its own (seeded by its rank; float32 and bfloat16, one larger than
a bucket), sums a copy the flat way (one float32 copy of every gradient, as uniopd did before
buckets) and the originals with `sum_grads`, each under a meter of the memory it allocates, and
saves both results and both peaks to OUT.<rank>, for tests/engine/test_memory_fit.py.
"""

from __future__ import annotations

import sys
import weakref

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from uniopd.engine.distributed import Dist

# float32 weights as big as a bucket and more, a bf16 one whose float32 copy is too, small ones
SHAPES = [((2304, 4096), torch.float32), ((4096,), torch.float32), ((300, 1000), torch.float32)]
SHAPES += [((1500, 4096), torch.bfloat16), ((7,), torch.bfloat16)]


class AllocationMeter(TorchDispatchMode):
    """The most bytes of new tensor storage alive at once while on: every torch op's output whose
    storage did not exist before counts until the tensor that made it is freed."""

    def __init__(self):
        super().__init__()
        self.known: set[int] = set()
        self.live = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        given = {_ptr(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and _ptr(t) not in given:  # not a view, not in place
                self._count(t)
        return out

    def _count(self, t: torch.Tensor) -> None:
        ptr, size = _ptr(t), t.untyped_storage().nbytes()
        if ptr in self.known or size == 0:
            return
        self.known.add(ptr)
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(t, self._free, ptr, size)

    def _free(self, ptr: int, size: int) -> None:
        self.known.discard(ptr)
        self.live -= size


def _ptr(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def flat_sum(grads: list[torch.Tensor]) -> None:
    """The reduction sum_grads replaced: every gradient copied into one float32 vector."""
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def main(out: str) -> None:
    world = Dist.from_env(cpu=True)
    gen = torch.Generator().manual_seed(world.rank)
    params = [torch.nn.Parameter(torch.zeros(s, dtype=d)) for s, d in SHAPES]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)
    flat = [p.grad.clone() for p in params]  # type: ignore[union-attr]
    with AllocationMeter() as flat_meter:
        flat_sum(flat)
    with AllocationMeter() as meter:
        world.sum_grads(params)
    torch.save(
        {
            "flat": flat,
            "bucketed": [p.grad for p in params],
            "flat_peak_bytes": flat_meter.peak,
            "peak_bytes": meter.peak,
            "grad_bytes": sum(p.grad.nbytes for p in params),  # type: ignore[union-attr]
        },
        f"{out}.{world.rank}",
    )
    world.close()


if __name__ == "__main__":
    main(sys.argv[1])
