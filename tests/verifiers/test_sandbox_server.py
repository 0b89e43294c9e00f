"""The sandbox's server process: safe to use from a busy torch process, replaced when it dies."""

import os
import signal
import threading

import pytest

from uniopd.tasks.problem import Problem
from uniopd.verifiers import get_verifier
from uniopd.verifiers.sandbox import Limits

DOUBLE = Problem(
    id="d", domain="code", prompt="", entry_point="f", tests=[{"args": [2], "expected": 4}]
)
GOOD, BAD = "def f(x):\n    return 2 * x\n", "def f(x): return x"


@pytest.fixture(scope="module")
def verifier():
    v = get_verifier("code", limits=Limits(wall_s=2.0))
    yield v
    v.close()


def test_safe_to_call_from_a_busy_torch_process(verifier):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    stop = threading.Event()

    def busy():
        a = torch.randn(256, 256)
        while not stop.is_set():
            a @ a

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    try:
        assert verifier.grade([DOUBLE] * 8, [GOOD, BAD] * 4) == [1.0, 0.0] * 4
    finally:
        stop.set()
        worker.join()


def test_a_dead_server_is_replaced(verifier):
    verifier.grade([DOUBLE], [GOOD])
    verifier.sandbox._server.kill()
    verifier.sandbox._server.wait()
    assert verifier.grade([DOUBLE], [GOOD]) == [1.0]


def test_a_sandbox_that_dies_mid_batch_costs_only_its_jobs(verifier):
    """The zygote killed while it holds a batch: those jobs are "could not grade" (None, counted),
    the call returns, and the next batch starts a fresh zygote that grades as usual."""
    slow = "import time\ntime.sleep(1.0)\n" + GOOD
    sandbox = verifier.sandbox
    verifier.grade([DOUBLE], [GOOD])  # a zygote is up
    zygote = sandbox._server
    killer = threading.Timer(0.4, lambda: os.killpg(zygote.pid, signal.SIGKILL))
    killer.start()
    before = verifier.counts["could_not_grade"]
    try:
        scores = verifier.grade([DOUBLE] * 4, [slow] * 4)
    finally:
        killer.join()
    assert scores == [None] * 4
    assert verifier.counts["could_not_grade"] - before == 4 and sandbox.counts["lost"] >= 4
    assert verifier.grade([DOUBLE] * 2, [GOOD, BAD]) == [1.0, 0.0]
    assert sandbox._server is not zygote
