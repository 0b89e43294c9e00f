"""`rollout.engine: hf-static-procs`: hf-static's decode loop in several CPU processes at once,
each on one thread with its share of the rows (rollout.processes; default: the CPUs this process
may use, over the run's processes).

For a small student on a CPU, where a decoding step is too many small kernels for torch's threads
to share (uniopd/engine/rollout/decode_processes.py has the figures). The samples follow hf-static's
distribution; with more than one process the random stream is another one (each part of the rows
has a seed of its own drawn from the step's generator), so a run is reproducible for a given
`rollout.processes`. On any other device than the CPU it decodes in this process, as hf-static.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch

from uniopd.engine.rollout.base import ENGINES, Generated
from uniopd.engine.rollout.decode_processes import DecodePool, WorkerDied
from uniopd.engine.rollout.hf_static import HFStaticEngine, decode_rows
from uniopd.engine.sampling import SamplingSettings

log = logging.getLogger(__name__)


def default_processes(world: int) -> int:
    """The CPUs this process may use, shared among the run's `world` processes."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, world))


@ENGINES.register("hf-static-procs")
class HFStaticProcsEngine(HFStaticEngine):
    @classmethod
    def problems(cls, *, sharded: bool, lora: bool = False, images: bool = False) -> list[str]:
        out = super().problems(sharded=sharded, lora=lora, images=images)
        if lora:  # a worker rebuilds the student from its class and config
            out.append(
                "cannot copy a LoRA student to its worker processes; use rollout.engine: hf-static"
            )
        return out

    def __init__(self, model, tokenizer, options=None):
        super().__init__(model, tokenizer, options)
        wanted = self.options.processes
        self.processes = default_processes(self.options.dist.world) if wanted is None else wanted
        self._pool: DecodePool | None = None
        self._broken = False

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingSettings,
        vision: Sequence | None = None,
    ) -> Generated:
        on_cpu = next(self.model.parameters()).device.type == "cpu"
        if self.processes < 2 or len(prompt_ids) < 2 or not on_cpu or self._broken:
            return super().generate(prompt_ids, sampling, vision)
        if self._pool is None:
            self._pool = DecodePool(self.model, self.processes - 1)
        try:
            responses, logprobs = self._pool.generate(
                prompt_ids,
                sampling,
                self.options.max_batch_rows,
                self._decode_here(sampling),
                self._autocast(),
            )
        except WorkerDied as died:
            # the rows are sampled again, all here: the run goes on, on one process
            log.warning(
                "%s; rollout.engine hf-static-procs decodes in this process from now on", died
            )
            self.close()
            self._broken = True
            return super().generate(prompt_ids, sampling, vision)
        except BaseException:
            # the workers' parts of this call may still come: the next call must not read them
            self.close()
            raise
        return Generated(responses, logprobs)

    def _autocast(self) -> torch.dtype | None:
        """The half precision the rollout runs under here (the caller's autocast, bf16-mixed),
        for the workers to run under too; None when it is the weights' own."""
        if not torch.is_autocast_enabled("cpu"):
            return None
        return torch.get_autocast_dtype("cpu")

    def _decode_here(self, sampling: SamplingSettings):
        def decode(rows, seed):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                gen = decode_rows(self.model, rows, sampling, self.options.max_batch_rows)
            return gen.responses, gen.logprobs

        return decode

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
