"""The warm sandbox's jobs from the outside: how many processes one costs, and what a relay that
dies takes with it (only its own program)."""

import os
import signal
import threading
import time

import psutil
import pytest

from uniopd.tasks.problem import Problem
from uniopd.verifiers import get_verifier, isolation, namespaces
from uniopd.verifiers.sandbox import Limits

DOUBLE = Problem(
    id="d", domain="code", prompt="", entry_point="f", tests=[{"args": [2], "expected": 4}]
)
GOOD = "def f(x):\n    return 2 * x\n"
# sleeps long enough to be looked at (or killed) from outside while it runs
SLOW = "import time\ntime.sleep(1.0)\n" + GOOD


@pytest.fixture(scope="module")
def verifier():
    how = isolation.choose()
    if how.kind != "bwrap":
        pytest.skip(f"no namespaces here ({how.reason})")
    v = get_verifier("code", limits=Limits(wall_s=5.0))
    assert v.grade([DOUBLE], [GOOD]) == [1.0]  # its zygote is up, to be looked at
    yield v
    v.close()


def _sleeping_chain(verifier) -> list[psutil.Process]:
    """The zygote's template and, below it, the processes of the one job that sleeps: [template,
    relay, ..., program], found from the host's /proc while the job runs."""
    server = psutil.Process(verifier.sandbox._server.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for proc in server.children(recursive=True):
            try:
                chain = _job_chain(proc)
            except psutil.NoSuchProcess:
                continue
            if chain:
                return chain
        time.sleep(0.05)
    raise AssertionError("the sleeping job was never seen")


def _job_chain(proc: psutil.Process) -> list[psutil.Process]:
    """[template, ..., proc] when proc is a sleeping leaf below the zygote's template, else [].
    Every process from the zygote's main down runs zygote.py's command line (all are forks of
    it; bwrap's above them name it too): main is the first from the top, the template its child."""
    if proc.status() != "sleeping" or proc.children():
        return []
    down = [*reversed(proc.parents()), proc]
    zygote = [
        i
        for i, p in enumerate(down)
        if p.name() != "bwrap" and "zygote.py" in " ".join(p.cmdline())
    ]
    template = zygote[0] + 1 if zygote else len(down)
    return down[template:] if len(down) - template >= 2 else []


def _in_thread(fn) -> tuple[threading.Thread, list]:
    """fn started in a thread; the list gets its result, or the exception it raised."""
    out: list = []

    def run():
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 (handed to the test, which raises it)
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_job_is_two_processes_the_relay_being_its_namespaces_init(verifier):
    """The relay is born in the job's fresh namespaces as their PID 1 and forks the program: two
    processes a job (three when a relay unshared and then had to fork a PID 1)."""
    looker, found = _in_thread(lambda: _sleeping_chain(verifier))
    try:
        assert verifier.grade([DOUBLE], [SLOW]) == [1.0]
    finally:
        looker.join()
    if isinstance(found[0], BaseException):
        raise found[0]
    template, *job = found[0]
    assert len(job) == 2, [p.pid for p in job]


def test_a_relay_killed_mid_batch_costs_only_its_program(verifier):
    """A relay killed from outside while its program runs: that program fails (0.0, never a
    reward), the batch's other programs are graded as usual, and the zygote stays up."""
    sandbox = verifier.sandbox
    zygote, lost = sandbox._server, sandbox.counts["lost"]

    def kill_the_slow_relay():
        _template, relay, *_ = _sleeping_chain(verifier)
        os.kill(relay.pid, signal.SIGKILL)

    killer, killed = _in_thread(kill_the_slow_relay)
    try:
        scores = verifier.grade([DOUBLE] * 4, [GOOD, SLOW, GOOD, "def f(x): return x"])
    finally:
        killer.join()
    assert killed == [None]
    assert scores == [1.0, 0.0, 1.0, 0.0]
    assert sandbox._server is zygote and sandbox.counts["lost"] == lost
    assert verifier.grade([DOUBLE], [GOOD]) == [1.0]


def test_clone_on_an_unknown_architecture_says_which(monkeypatch):
    """Where the clone system call's number is not known the zygote's self-test fails with these
    words, and the grader falls back (said once, by isolation.choose)."""
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, real.release, real.version, "vax"))
    monkeypatch.setattr(os, "uname", lambda: fake)
    with pytest.raises(OSError, match="no clone system call known for vax"):
        namespaces.clone_fresh()
