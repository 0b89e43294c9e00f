"""Preemption: a scheduler's SIGTERM (or SIGUSR1, the warning many send first) ends a run at a
step boundary with a checkpoint, instead of losing everything since the last periodic one.

    first signal     a flag; the step under way finishes, every process learns whether any of
                     them was signalled (one max-reduce per step), so all stop after the same
                     step; they write a checkpoint and the trainer raises Preempted (exit code 4)
    second signal    while that checkpoint is being written: exit at once. A checkpoint folder
                     gets its real name only when complete, so what was intact stays intact and
                     `--resume` takes the one before. At any other moment it is the same notice
                     again (a scheduler that signals every process, and a launcher that forwards
                     it, deliver it twice) and changes nothing.

The handlers are process-wide, so the command that owns the process installs them for as long as
it runs (`uniopd run`, a sweep worker); a trainer in a process without them never stops early.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from uniopd.engine.distributed import Dist

EXIT_PREEMPTED = 4  # the run stopped on a signal after writing a checkpoint: requeue, --resume
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """The run stopped after `step` on `signal_name`; `checkpoint`: where it was saved (None on
    a process that does not write the run directory)."""

    def __init__(self, step: int, checkpoint: Path | None, run_path: Path, signal_name: str):
        self.step, self.checkpoint, self.run_path = step, checkpoint, run_path
        self.signal_name = signal_name
        super().__init__(f"{signal_name}: stopped after step {step}")


class _State:
    signal_name: str | None = None  # the first signal received
    checkpointing = False


_state = _State()


@contextmanager
def handling() -> Iterator[None]:
    """SIGTERM and SIGUSR1 handled inside the block, as before it outside (a test process or a
    notebook that calls the command keeps its own handling). Only the main thread may install."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, _on_signal) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        _state.signal_name = None


def _on_signal(signum: int, frame) -> None:
    if _state.signal_name is None:
        _state.signal_name = signal.Signals(signum).name
        return
    if _state.checkpointing:
        os.write(
            2,
            b"uniopd: a second signal while writing the checkpoint: exiting now; the newest "
            b"complete checkpoint is untouched\n",
        )
        os._exit(EXIT_PREEMPTED)


def requested() -> str | None:
    """The signal this process received, if any."""
    return _state.signal_name


def agreed(dist: Dist) -> str | None:
    """Whether any process was signalled, the same answer on every process (a collective: all
    call it at the same step). The signal's name, or None."""
    here = _state.signal_name is not None
    if dist.active and dist.max(float(here)) > 0:
        return _state.signal_name or "a signal to another process"
    return _state.signal_name if here else None


@contextmanager
def checkpointing() -> Iterator[None]:
    """The window in which a second signal exits at once."""
    _state.checkpointing = True
    try:
        yield
    finally:
        _state.checkpointing = False
