"""The sandbox against hostile programs: each is graded 0.0, nothing it starts survives, nothing it
writes lands outside its temp dir, and the good program next to it in the batch still scores 1.0."""

import functools
import os
import threading
import time
import uuid

import psutil
import pytest

from uniopd.tasks.problem import Problem
from uniopd.verifiers import get_verifier
from uniopd.verifiers.code import run_io_cases
from uniopd.verifiers.sandbox import Limits, Sandbox

WALL_S = 1.0
DOUBLE = Problem(
    id="double", domain="code", prompt="", entry_point="f", tests=[{"args": [2], "expected": 4}]
)
GOOD = "def f(x):\n    return 2 * x\n"


@pytest.fixture(scope="module")
def verifier():
    v = get_verifier("code", limits=Limits(wall_s=WALL_S))
    yield v
    v.close()


def grade(verifier, *programs: str) -> list:
    """Each program, then GOOD, in one batch; the good one must be unaffected by its neighbours."""
    scores = verifier.grade([DOUBLE] * (len(programs) + 1), [*programs, GOOD])
    assert scores[-1] == 1.0
    return scores[:-1]


def run(program: str, limits: Limits = Limits(wall_s=WALL_S)):
    """The raw sandbox result, for checks on status and detail."""
    sandbox = Sandbox(limits)
    try:
        return sandbox.run([functools.partial(run_io_cases, program, "f", DOUBLE.tests)])[0]
    finally:
        sandbox.close()


def processes_with(marker: str) -> list:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if marker in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(cmdline)
    return found


def marker() -> str:
    return f"{900 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"  # a unique `sleep` duration


def test_infinite_loops_time_out(verifier):
    start = time.monotonic()
    plain = "def f(x):\n    while True:\n        pass\n"
    # Swallows the soft timer's exception too, so only the hard kill can stop it.
    stubborn = (
        "def f(x):\n"
        "    while True:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
    )
    assert grade(verifier, plain, stubborn) == [0.0, 0.0]
    assert time.monotonic() - start < WALL_S + 4
    assert run(stubborn).status == "timeout"


@pytest.mark.parametrize(
    "spawn",
    [
        "import os\nos.system('sleep {m}')",
        "import os\npid = os.fork()\nif pid == 0:\n    os.execvp('sleep', ['sleep', '{m}'])",
        "import posix\npid = posix.fork()\nif pid == 0:\n"
        "    posix.execv('/bin/sleep', ['sleep', '{m}'])",
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
def test_spawning_processes_is_blocked(verifier, spawn):
    m = marker()
    assert grade(verifier, spawn.format(m=m) + "\n" + GOOD) == [0.0]
    assert processes_with(m) == []


def test_processes_that_get_out_anyway_are_killed(verifier, tmp_path):
    """_posixsubprocess.fork_exec slips past the Python-level guards; the started shell leaves a
    setsid'd grandchild (own session, so not in the runner's process group) and exec's a sleep of
    its own. The supervisor, a child subreaper, must still kill them all."""
    m = marker()
    started = tmp_path / "started"
    escape = (
        "import _posixsubprocess, os\n"
        f"cmd = 'touch {started}; setsid sleep {m} & exec sleep {m}'\n"
        "r, w = os.pipe()\n"
        "args = [[b'/bin/sh', b'-c', cmd.encode()], [b'/bin/sh'], True, (), None, None,\n"
        "        -1, -1, -1, -1, -1, -1, r, w, False, True, -1, None, None, None, -1, None]\n"
        "try:\n"
        "    _posixsubprocess.fork_exec(*args, False)\n"
        "except TypeError:  # the signature differs across Python versions\n"
        "    _posixsubprocess.fork_exec(*args)\n"
        "import time\n"
        "time.sleep(0.3)\n"
    )
    loops = escape + "def f(x):\n    while True:\n        pass\n"
    returns = escape + GOOD
    assert grade(verifier, loops) == [0.0]
    assert started.exists(), "the escape did not run, so this test proves nothing"
    assert processes_with(m) == []
    started.unlink()
    assert grade(verifier, returns) == [1.0]  # spawning is not graded; surviving is what matters
    assert started.exists()
    assert processes_with(m) == []


def test_memory_bombs_fail(verifier):
    huge = "x = [0] * 10**12\n" + GOOD
    growing = "def f(x):\n    hoard = []\n    while True:\n        hoard.append(' ' * 10**7)\n"
    assert grade(verifier, huge, growing) == [0.0, 0.0]
    # Reaching the limit means touching every page of it: a small limit is quick on slow VMs.
    result = run(growing, Limits(wall_s=5.0, memory_bytes=256 << 20))
    assert (result.status, result.detail.split(":")[0]) == ("fail", "MemoryError")


@pytest.mark.parametrize(
    "write",
    [
        "open({p!r}, 'w').write('x')",
        "import pathlib\npathlib.Path({p!r}).write_text('x')",
        "import io\nio.open({p!r}, 'w').write('x')",
        "import os\nos.close(os.open({p!r}, os.O_WRONLY | os.O_CREAT))",
        "import pathlib, posix\npathlib.Path('mine').write_text('x')\nposix.rename('mine', {p!r})",
        "import shutil, pathlib\npathlib.Path('mine').write_text('x')\nshutil.copy('mine', {p!r})",
    ],
    ids=["open", "pathlib", "io.open", "os.open", "rename", "shutil.copy"],
)
def test_writing_outside_the_temp_dir_is_blocked(verifier, tmp_path, write):
    target = tmp_path / "escaped.txt"
    assert grade(verifier, write.format(p=str(target)) + "\n" + GOOD) == [0.0]
    assert not target.exists()


def test_deleting_outside_the_temp_dir_is_blocked(verifier, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "victim_dir").mkdir()
    attempts = [
        f"import os\nos.remove({str(victim)!r})",
        f"import posix\nposix.unlink({str(victim)!r})",
        f"import shutil\nshutil.rmtree({str(tmp_path / 'victim_dir')!r})",
        f"import posix\nposix.rmdir({str(tmp_path / 'victim_dir')!r})",
    ]
    assert grade(verifier, *(a + "\n" + GOOD for a in attempts)) == [0.0] * 4
    assert victim.read_text() == "keep me" and (tmp_path / "victim_dir").is_dir()


def test_files_inside_the_temp_dir_are_fine(verifier):
    scratch = (
        "import pathlib\npathlib.Path('note.txt').write_text('2')\n"
        "def f(x):\n    return x * int(pathlib.Path('note.txt').read_text())\n"
    )
    assert grade(verifier, scratch) == [1.0]


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
def test_exiting_early_fails_and_the_caller_survives(verifier, leave):
    program = leave + "\n" + GOOD if "def f" not in leave else leave
    assert grade(verifier, program) == [0.0]


def test_signalling_other_processes_is_blocked(verifier):
    me = os.getpid()
    attempts = [
        # The supervisor: killing it would turn this 0.0 into a None.
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        f"import posix, signal\nposix.kill({me}, signal.SIGKILL)",  # the caller
        "import posix, signal\nposix.killpg(0, signal.SIGKILL)",
    ]
    assert grade(verifier, *(a + "\n" + GOOD for a in attempts)) == [0.0] * 3


def test_megabytes_of_output_are_fine(verifier):
    noisy = (
        "import os, sys\nprint('x' * 5_000_000)\nsys.stderr.write('e' * 5_000_000)\n"
        "os.write(1, b'y' * 1_000_000)\n" + GOOD
    )
    assert grade(verifier, noisy) == [1.0]


def test_callers_environment_is_hidden(monkeypatch):
    monkeypatch.setenv("UNIOPD_TEST_SECRET", "hunter2")
    problem = Problem(
        id="env", domain="code", prompt="", entry_point="f", tests=[{"args": [], "expected": None}]
    )
    peek = "import os\ndef f():\n    return os.environ.get('UNIOPD_TEST_SECRET')\n"
    verifier = get_verifier("code")
    try:
        assert verifier.grade([problem], [peek]) == [1.0]
    finally:
        verifier.close()


def test_64_programs_take_about_a_second(verifier):
    verifier.grade([DOUBLE], [GOOD])
    start = time.monotonic()
    assert verifier.grade([DOUBLE] * 64, [GOOD] * 64) == [1.0] * 64
    assert time.monotonic() - start < 2.0


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
        assert verifier.grade([DOUBLE] * 8, [GOOD, "def f(x): return x"] * 4) == [1.0, 0.0] * 4
    finally:
        stop.set()
        worker.join()


def test_a_dead_server_is_replaced(verifier):
    verifier.grade([DOUBLE], [GOOD])
    verifier.sandbox._server.kill()
    verifier.sandbox._server.wait()
    assert verifier.grade([DOUBLE], [GOOD]) == [1.0]
