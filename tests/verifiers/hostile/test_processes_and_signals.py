"""Processes and signals: nothing a program starts outlives its job, and it can neither see nor
signal a process outside it (the grader, the caller, anything else of the host's)."""

import os
import subprocess
import time

import pytest
from hostile_programs import GOOD, escape, marker, processes_with

pytestmark = pytest.mark.slow  # each program runs in a sandboxed process


@pytest.mark.parametrize(
    "spawn",
    [
        "import os\nos.system('sleep {m}')",
        "import os\npid = os.fork()\nif pid == 0:\n    os.execvp('sleep', ['sleep', '{m}'])",
        "import posix\npid = posix.fork()\nif pid == 0:\n    posix.execv('/bin/sleep', ['sleep', '{m}'])",
        "import subprocess\nsubprocess.Popen(['sleep', '{m}'])",
        "import subprocess\nsubprocess.run('sleep {m} &', shell=True)",
        "import multiprocessing, os\n"
        "multiprocessing.Process(target=os.execvp, args=('sleep', ['sleep', '{m}'])).start()",
        "import os\nos.posix_spawn('/bin/sleep', ['sleep', '{m}'], {{}})",
        "import os\nos.execv('/bin/sleep', ['sleep', '{m}'])",
    ],
    ids=[
        "os.system",
        "os.fork",
        "posix.fork",
        "Popen",
        "subprocess.run",
        "multiprocessing",
        "posix_spawn",
        "execv",
    ],
)
def test_spawning_processes_is_refused(grade, spawn):
    m = marker()
    assert grade(spawn.format(m=m) + "\n" + GOOD) == [0.0]
    assert processes_with(m) == []


def test_escaped_processes_and_daemons_are_killed(grade):
    """fork_exec slips past the Python layers; the started shell leaves a setsid'd grandchild and
    exec's a sleep of its own. Nothing may survive the job."""
    m = marker()
    daemon = escape(["/bin/sh", "-c", f"setsid sleep {m} & sleep {m} &"])
    assert grade(daemon + "def f(x):\n    while True:\n        pass\n") == [0.0]
    grade(daemon + GOOD)  # graded on its outputs (right ones here); what matters is below
    assert processes_with(m) == []


@pytest.mark.exhausts_host
def test_a_fork_bomb_is_contained(grade, needs_namespaces):
    m = marker()
    bomb = escape(["/bin/sh", "-c", f"b() {{ sleep {m} & b & b; }}; b"])
    start = time.monotonic()
    assert grade(bomb + "def f(x):\n    return -1\n") == [0.0]
    assert time.monotonic() - start < 30
    # killed, every one; under load the kernel takes a moment to tear thousands of them down
    deadline = time.monotonic() + 5
    while processes_with(m) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(m) == []


@pytest.fixture
def victim():
    """A process of the host's that a program would like to kill."""
    proc = subprocess.Popen(["sleep", marker()])
    yield proc
    proc.kill()
    proc.wait()


def test_signals_reach_no_process_outside(grade, victim, needs_namespaces):
    me = os.getpid()
    attacks = [
        f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)\n" + GOOD,
        escape(["/bin/kill", "-9", str(victim.pid), str(me)])
        + "def f(x):\n    return 2 * x if escaped == 0 else -1\n",
        escape(["/bin/kill", "-9", "-1"]) + "def f(x):\n    return -1\n",  # everything it can
    ]
    assert grade(*attacks) == [0.0] * 3
    assert victim.poll() is None, "a process outside the sandbox was killed"


def test_the_grader_is_not_visible(grade, needs_namespaces):
    me = os.getpid()
    peek = (
        "import os\n"
        "pids = {int(p) for p in os.listdir('/proc') if p.isdigit()}\n"
        f"def f(x):\n    return 2 * x if {me} in pids or len(pids) > 8 else -1\n"
    )
    assert grade(peek) == [0.0]


@pytest.mark.parametrize(
    "leave",
    [
        "import sys\nsys.exit(0)",
        "raise SystemExit",
        "import os\nos._exit(0)",
        "exit()",
        "import os\nos.abort()",
        "import signal\nsignal.raise_signal(signal.SIGRTMIN + 3)",  # a signal without a name
        "def f(x):\n    import sys\n    sys.exit(0)",
        "def f(x):\n    raise KeyboardInterrupt",
    ],
    ids=[
        "sys.exit",
        "SystemExit",
        "os._exit",
        "exit()",
        "abort",
        "rt-signal",
        "exit-in-f",
        "KeyboardInterrupt",
    ],
)
def test_leaving_early_fails(grade, leave):
    program = leave + "\n" + GOOD if "def f" not in leave else leave
    assert grade(program) == [0.0]
