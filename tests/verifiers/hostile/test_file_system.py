"""File system: nothing outside the job's own temp dir is written, deleted or even seen."""

import os
import pathlib

import pytest
from hostile_programs import GOOD, escape, python_escape

pytestmark = pytest.mark.slow  # each program runs in a sandboxed process

WRITES = {
    "open": "open({p!r}, 'w').write('x')",
    "pathlib": "import pathlib\npathlib.Path({p!r}).write_text('x')",
    "io.open": "import io\nio.open({p!r}, 'w').write('x')",
    "os.open": "import os\nos.close(os.open({p!r}, os.O_WRONLY | os.O_CREAT))",
    "rename": "import pathlib, posix\npathlib.Path('mine').write_text('x')\nposix.rename('mine', {p!r})",
    "shutil.copy": "import shutil, pathlib\npathlib.Path('mine').write_text('x')\nshutil.copy('mine', {p!r})",
    "mkfifo": "import os\nos.mkfifo({p!r})",
    "mknod": "import os, stat\nos.mknod({p!r}, stat.S_IFREG | 0o600)",
    "unix socket": "import socket\nsocket.socket(socket.AF_UNIX).bind({p!r})",
    "sqlite": "import sqlite3\nsqlite3.connect({p!r}).execute('create table t (x)')",
    "mkdir": "import os\nos.mkdir({p!r})",
}


def _wins_if_exists(attack: str, path: str) -> str:
    """The attack, then an f that is right only if the file now exists (as the program sees it)."""
    return (
        f"try:\n    exec({attack!r})\nexcept BaseException:\n    pass\n"
        f"import os\ndef f(x):\n    return 2 * x if os.path.exists({path!r}) else -1\n"
    )


@pytest.mark.parametrize("attack", list(WRITES.values()), ids=list(WRITES))
def test_writing_outside_is_refused(grade, outside, tmp_path, attack):
    for target in (os.path.join(outside, "escaped"), str(tmp_path / "escaped")):
        assert grade(_wins_if_exists(attack.format(p=target), target)) == [0.0]
        assert not os.path.exists(target)


def test_writing_below_python_is_refused(grade, outside, needs_namespaces):
    target = os.path.join(outside, "escaped")
    for program in (
        escape(["/bin/sh", "-c", f"echo x > {target}; touch {target}.2; mkdir {target}.3"]),
        python_escape(f"open({target!r}, 'w').write('x')"),
    ):
        assert grade(program + "def f(x):\n    return 2 * x if escaped == 0 else -1\n") == [0.0]
    assert os.listdir(outside) == []


def test_deleting_outside_is_refused(grade, outside, needs_namespaces):
    victim = pathlib.Path(outside) / "victim.txt"
    victim.write_text("keep me")
    (pathlib.Path(outside) / "victim_dir").mkdir()
    attempts = [
        f"import os\nos.remove({str(victim)!r})\n" + GOOD,
        f"import shutil\nshutil.rmtree({str(victim.parent / 'victim_dir')!r})\n" + GOOD,
        escape(["/bin/rm", "-rf", str(victim), str(victim.parent / "victim_dir")])
        + "def f(x):\n    return 2 * x if escaped == 0 else -1\n",
    ]
    assert grade(*attempts) == [0.0] * 3
    assert victim.read_text() == "keep me" and (victim.parent / "victim_dir").is_dir()


def test_the_host_temp_dir_is_not_visible(grade, tmp_path, needs_namespaces):
    (tmp_path / "secret.txt").write_text("hunter2")
    peek = f"import os\ndef f(x):\n    return 2 * x if os.path.exists({str(tmp_path)!r}) else -1\n"
    assert grade(peek) == [0.0]


def test_the_job_may_use_its_own_temp_dir(grade):
    scratch = (
        "import pathlib\npathlib.Path('note.txt').write_text('2')\n"
        "def f(x):\n    return x * int(pathlib.Path('note.txt').read_text())\n"
    )
    assert grade(scratch, scratch) == [1.0, 1.0]  # and each job has its own
