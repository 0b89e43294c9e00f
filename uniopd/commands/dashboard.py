"""`uniopd dashboard SWEEP [--port P] [-v]`: optuna-dashboard on a sweep's storage, on 127.0.0.1.

The dashboard is the one installed beside the interpreter that runs uniopd (`.venv/bin`), so it
is found with the venv not activated; PATH is the fallback. It runs as a child process that ends
with this one: on Ctrl-C, on `kill PID` (SIGTERM), and, on Linux, even when this process is
killed outright (the kernel sends the child SIGTERM when its parent dies). Its access log (a
line per request) is left out unless -v: its own --quiet leaves the default server's log on, so
the lines are dropped from its output here.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import IO

from uniopd.terminal import fail

SCRIPT = "optuna-dashboard"
# `127.0.0.1 - - [06/Dec/2026 22:26:54] "GET /dashboard/ HTTP/1.1" 200 4145`
ACCESS_LINE = re.compile(rb'^\S+ - - \[[^\]]*\] "[A-Z]+ \S* HTTP/[\d.]+" \d{3}')


def _pass_on(stream: IO[bytes], keep_access_log: bool) -> None:
    """The child's stderr to ours, line by line, without the access log unless asked for."""
    for line in iter(stream.readline, b""):
        if keep_access_log or not ACCESS_LINE.match(line):
            sys.stderr.buffer.write(line)
            sys.stderr.flush()


def find_dashboard() -> tuple[str | None, list[str]]:
    """The optuna-dashboard script and every place looked: the running interpreter's scripts
    folder (and the folder of the interpreter itself), then PATH."""
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    looked = []
    for folder in dict.fromkeys(folders):  # the two are one folder in a venv
        candidate = Path(folder) / SCRIPT
        looked.append(str(candidate))
        if candidate.is_file():
            return str(candidate), looked
    looked.append("PATH")
    return shutil.which(SCRIPT), looked


def _die_with_parent() -> None:
    """In the child, before it runs: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG),
    so killing `uniopd dashboard` by its PID never leaves the dashboard serving the port."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the SIGTERM handler below still covers kill
        pass


def serve(url: str, port: int, verbose: bool = False) -> int:
    exe, looked = find_dashboard()
    if exe is None:
        return fail(
            f"optuna-dashboard is not installed (looked in {', '.join(looked)}); "
            f"install it into this environment: {sys.executable} -m pip install optuna-dashboard"
        )
    command = [exe, "--host", "127.0.0.1", "--port", str(port), url]
    if not verbose:
        command.insert(1, "--quiet")
    print(f"uniopd: optuna-dashboard on http://127.0.0.1:{port} for {url}", file=sys.stderr)
    child = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    assert child.stderr is not None  # a pipe, asked for above
    threading.Thread(target=_pass_on, args=(child.stderr, verbose), daemon=True).start()

    def _stop(signum, _frame):  # `kill PID`: end the child too, then exit as killed
        child.terminate()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return child.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
