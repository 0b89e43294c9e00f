"""GPU placement for worker processes: `--gpus 0,1,2,3 --gpus-per-run K` as GPU sets, and the
environment that pins a worker process to its set.

    gpu_sets("0,1,2,3")     -> [["0"], ["1"], ["2"], ["3"]]
    gpu_sets("0,1,2,3", 2)  -> [["0", "1"], ["2", "3"]]

A worker sees only its own set through CUDA_VISIBLE_DEVICES, so `device: cuda` (or `auto`) in
the worker lands on its set without the run config knowing. Nothing here touches a GPU: the sets
are plain text, and on a CPU-only machine the variable is set and simply unused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_EXAMPLE = "give distinct GPU ids separated by commas, e.g. --gpus 0,1,2,3"


def gpu_sets(gpus: str, per_run: int = 1) -> list[list[str]]:
    """The GPU sets of `--gpus`, `per_run` consecutive ids each; ValueError naming the bad text."""
    if per_run < 1:
        raise ValueError(f"--gpus-per-run {per_run}: must be at least 1")
    ids = _parse_ids(gpus)
    if len(ids) % per_run:
        raise ValueError(
            f"--gpus {gpus!r} names {len(ids)} GPUs, which do not split into sets of "
            f"--gpus-per-run {per_run}"
        )
    return [ids[i : i + per_run] for i in range(0, len(ids), per_run)]


def _parse_ids(gpus: str) -> list[str]:
    if not gpus.strip():
        raise ValueError(f"--gpus {gpus!r}: no GPU ids; {_EXAMPLE}")
    ids: list[str] = []
    for n, item in enumerate(gpus.split(","), 1):
        text = item.strip()
        if not text:
            raise ValueError(f"--gpus {gpus!r}: id {n} is empty; {_EXAMPLE}")
        if not re.fullmatch(r"[0-9]+", text):
            raise ValueError(
                f"--gpus {gpus!r}: {text!r} is not a GPU id (a non-negative integer); {_EXAMPLE}"
            )
        gpu = str(int(text))  # "01" and "1" are the same GPU
        if gpu in ids:
            raise ValueError(f"--gpus {gpus!r}: GPU {gpu} is named twice; {_EXAMPLE}")
        ids.append(gpu)
    return ids


def from_flags(gpus: str | None, per_run: int | None) -> list[list[str]] | None:
    """The sets of the command-line flags, or None when --gpus is not given."""
    if gpus is None:
        if per_run is not None:
            raise ValueError(f"--gpus-per-run {per_run} needs --gpus (the GPU ids to split)")
        return None
    return gpu_sets(gpus, 1 if per_run is None else per_run)


def worker_env(
    gpu_set: list[str] | None, n_workers: int, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of one of `n_workers` worker processes: a copy of `base` (the parent's
    environment by default), pinned to `gpu_set` when given."""
    env = dict(os.environ if base is None else base)
    # tokenizers' own thread pool deadlocks after a fork and only warns about it
    env["TOKENIZERS_PARALLELISM"] = "false"
    if n_workers > 1:
        # every worker's torch would otherwise start one thread per core: n x oversubscribed.
        # A user's own setting wins; one worker keeps torch's default (all cores).
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n_workers)))
    if gpu_set is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_set)
    return env
