"""Helpers of the hostile-program suite (conftest.py says what the suite is)."""

from __future__ import annotations

import sys
import uuid

import psutil

from uniopd.tasks.problem import Problem

WALL_S = 1.5
DOUBLE = Problem(
    id="double",
    domain="code",
    prompt="",
    entry_point="f",
    tests=[{"args": [x], "expected": 2 * x} for x in (2, -3, 7)],
)
GOOD = "def f(x):\n    return 2 * x\n"


def escape(argv: list[str]) -> str:
    """Program text that starts `argv` below the audit hook and evalplus's guard (the C call
    subprocess itself uses), waits for it, and leaves its exit code in `escaped`."""
    return (
        "import _posixsubprocess, os\n"
        f"argv = {[a.encode() for a in argv]!r}\n"
        "r, w = os.pipe()\n"
        "args = [argv, [argv[0]], True, (), None, None,\n"
        "        -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None, None, None, -1, None]\n"
        "try:\n"
        "    pid = _posixsubprocess.fork_exec(*args, False)\n"
        "except TypeError:  # the signature differs across Python versions\n"
        "    pid = _posixsubprocess.fork_exec(*args)\n"
        "escaped = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
    )


def python_escape(code: str) -> str:
    """`escape` of a fresh Python running `code`: no audit hook, no guard in it."""
    return escape([sys.executable, "-I", "-S", "-c", code])


def marker() -> str:
    return f"{900 + uuid.uuid4().int % 99}.{uuid.uuid4().int % 10**6}"  # a unique `sleep` duration


def processes_with(text: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if text in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(cmdline)
    return found
