"""A trial whose worker was preempted (SIGTERM or SIGUSR1 to the worker) is no verdict on its
parameters: its run stops after a checkpoint, the trial is failed and queued again with the same
parameters, as the trial of a worker that died is (heartbeats, uniopd/sweep/run.py), and the
worker pulls no further trial. Re-running `uniopd sweep` (or the scheduler requeueing the job)
runs it again."""

from __future__ import annotations

import copy
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

from uniopd.loop.preemption import SIGNALS, Preempted


def requeue(trial: optuna.Trial, run: Path, stop: Preempted) -> None:
    (run / "preempted.txt").write_text(f"{stop}; trial re-queued with the same parameters\n")
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    # no retry limit: a preemption says nothing about the trial (a dead worker's retries count)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)
    retry(trial.study, copy.deepcopy(frozen))


@contextmanager
def forwarding(workers: list[subprocess.Popen]) -> Iterator[None]:
    """While `uniopd sweep` waits for its workers: a SIGTERM or SIGUSR1 sent to it alone (a
    scheduler that signals the job's first process) reaches every worker, which re-queues its
    trial, and the sweep still writes its summary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame) -> None:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signum)

    before = {s: signal.signal(s, forward) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
