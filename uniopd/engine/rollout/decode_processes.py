"""Worker processes that decode with a shared-memory copy of the student, one CPU thread each.

Why processes: a tiny model's decoding step is hundreds of small kernels, and torch's intra-op
threads meet at a barrier after each one, so a second thread adds little (tiny world, 2 cores:
0.36-0.41 s for 128 rows on two threads, 0.45 s on one). Two processes of one thread each, each
decoding half the rows, take 0.24 s. The GIL rules out Python threads: most of a step is Python.

The pool holds one copy of the student's state dict in shared memory, made once; each worker
builds the student's class around those very tensors, and `sync` copies the live weights into them
before each rollout (a few megabytes for the models this is for), so the workers sample the
weights of the moment without pickling anything per step. Workers ignore SIGINT, SIGTERM and SIGUSR1 (the
run decides when to stop: a preempted run finishes its step first, docs/faults.md) and leave on
their own once the process that started them is gone.
"""

from __future__ import annotations

import queue
import signal
import traceback
import weakref
from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.multiprocessing as mp

from uniopd.engine.sampling import SamplingSettings

POLL_S = 1.0  # how often an idle worker checks that its parent still lives


class WorkerDied(RuntimeError):
    """A decoding worker ended or failed mid-rollout."""


def _serve(model_class, config, weights: dict, inbox, outbox) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    torch.set_num_threads(1)
    from uniopd.engine.rollout.hf_static import decode_rows

    # the student's architecture around the shared tensors themselves (assign: no copy), so
    # every `sync` of the parent is what this worker samples with
    model = model_class(config).eval()
    model.load_state_dict(weights, assign=True)
    parent = mp.parent_process()
    while True:
        try:
            job = inbox.get(timeout=POLL_S)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return
            continue
        if job is None:
            return
        rows, sampling, max_batch_rows, seed, autocast = job
        try:
            torch.manual_seed(seed)
            # the precision the parent samples its own part in (bf16-mixed: under autocast)
            half = nullcontext() if autocast is None else torch.autocast("cpu", dtype=autocast)
            with torch.no_grad(), half:
                gen = decode_rows(model, rows, sampling, max_batch_rows)
            outbox.put(("ok", gen.responses, gen.logprobs))
        except BaseException:  # the parent raises it, naming this worker
            outbox.put(("error", traceback.format_exc(), None))


def _context(model):
    """Workers forked from a server process that imported torch, the decoder and the model's
    code once and ran nothing (a fork of this process, which holds torch's thread pools, is
    unsafe; a fresh interpreter per worker spends seconds importing). The preload list counts
    when the server starts: the first pool's."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["uniopd.engine.rollout.hf_static", type(model).__module__])
    return ctx


class DecodePool:
    """`workers` processes beside this one; `generate` splits rows over all `workers + 1`."""

    def __init__(self, model, workers: int):
        # the weights, not the module, cross over: a module may carry what does not pickle (a
        # wrapped method, hooks), and its class and config are all a worker needs besides
        self.model = model
        self.shared = {k: v.detach().clone().share_memory_() for k, v in model.state_dict().items()}
        ctx = _context(model)
        self.inboxes, self.outboxes, self.procs = [], [], []
        for i in range(workers):
            inbox, outbox = ctx.Queue(), ctx.Queue()
            proc = ctx.Process(
                target=_serve,
                args=(type(model), model.config, self.shared, inbox, outbox),
                name=f"uniopd-decode-{i + 1}",
                daemon=True,
            )
            proc.start()
            self.inboxes.append(inbox)
            self.outboxes.append(outbox)
            self.procs.append(proc)
        self._finalizer = weakref.finalize(self, _stop, self.inboxes, self.procs)

    @torch.no_grad()
    def sync(self) -> None:
        """The live student's weights into the shared copy."""
        for name, live in self.model.state_dict().items():
            self.shared[name].copy_(live)

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingSettings,
        max_batch_rows: int,
        decode_here,
        autocast: torch.dtype | None = None,
    ):
        """(responses, logprobs) of every row, in order. Rows are cut into `workers + 1`
        contiguous parts; part 0 is decoded here by `decode_here(rows, seed)`, on one thread,
        the others by the workers, under autocast to `autocast` when it is given.
        Each part's sampling is seeded from torch's global generator, so a run is reproducible
        for a given number of processes (another number samples other tokens)."""
        self.sync()
        parts = len(self.procs) + 1
        bounds = [round(i * len(prompt_ids) / parts) for i in range(parts + 1)]
        seeds = torch.randint(0, 2**62, (parts,)).tolist()
        for inbox, i in zip(self.inboxes, range(1, parts)):
            rows = [list(r) for r in prompt_ids[bounds[i] : bounds[i + 1]]]
            inbox.put((rows, sampling, max_batch_rows, seeds[i], autocast))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            responses, logprobs = decode_here(prompt_ids[bounds[0] : bounds[1]], seeds[0])
        finally:
            torch.set_num_threads(threads)
        for proc, outbox in zip(self.procs, self.outboxes):
            status, got, got_logp = self._receive(proc, outbox)
            if status == "error":
                raise WorkerDied(f"decoding worker {proc.name} failed:\n{got}")
            responses += got
            logprobs += got_logp
        return responses, logprobs

    @staticmethod
    def _receive(proc, outbox):
        while True:
            try:
                return outbox.get(timeout=POLL_S)
            except queue.Empty:
                if not proc.is_alive():
                    raise WorkerDied(
                        f"decoding worker {proc.name} (pid {proc.pid}) ended with exit code "
                        f"{proc.exitcode} before sending its rows (a script that starts a run "
                        "must do so under `if __name__ == '__main__':`, as for any spawned process)"
                    ) from None

    def close(self) -> None:
        self._finalizer()


def _stop(inboxes, procs) -> None:
    for inbox, proc in zip(inboxes, procs):
        if proc.is_alive():
            try:
                inbox.put(None)
            except (OSError, ValueError):
                pass
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
