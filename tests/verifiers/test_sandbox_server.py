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


def test_a_caller_stopped_past_its_deadline_keeps_the_reports_waiting(monkeypatch):
    """The caller is stopped (as by SIGSTOP) right after it read the first report, and resumes past
    the batch's deadline with the other jobs' reports in the pipe: it takes them, rather than
    grading finished work as "could not grade". Emulated with a clock that jumps while the caller
    sleeps, since a test cannot stop its own process."""
    import time as real_time
    import types

    from uniopd.verifiers import sandbox as module
    from uniopd.verifiers.sandbox import Job, Sandbox
    from uniopd.verifiers.values import encode

    program = "import time\ndef f(x):\n    time.sleep(x)\n    return x\n"
    box = Sandbox(Limits(wall_s=5.0), max_parallel=4)
    try:
        assert box.run([Job("call", program, "f", inputs=[encode([0])])])[0].status == "ran"
        clock = {"offset": 0.0, "stopped": False}

        def read_then_stop(fd, size):
            chunk = os.read(fd, size)
            if b'"id"' in chunk and not clock["stopped"]:
                clock["stopped"] = True
                real_time.sleep(2.5)  # the slower jobs finish while the caller is stopped
                clock["offset"] += 3600.0  # and it wakes an hour later
            return chunk

        monkeypatch.setattr(
            module, "os", types.SimpleNamespace(**{**vars(os), "read": read_then_stop})
        )
        monkeypatch.setattr(
            module,
            "time",
            types.SimpleNamespace(monotonic=lambda: real_time.monotonic() + clock["offset"]),
        )
        jobs = [Job("call", program, "f", inputs=[encode([s])]) for s in (0, 1, 1)]
        results = box.run(jobs)
        assert clock["stopped"]
        assert [r.status for r in results] == ["ran"] * 3
        assert [r.results for r in results] == [(("out", 0),), (("out", 1),), (("out", 1),)]
        assert box.counts["lost"] == 0
    finally:
        box.close()
