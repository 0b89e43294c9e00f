"""Isolation below Python for sandbox jobs: bubblewrap when the machine allows it, said once when not.

Each job's harness (uniopd/verifiers/harness.py) is started with exec, with an empty environment,
inside

    bwrap --unshare-all --unshare-user --disable-userns --die-with-parent --new-session
          --cap-drop ALL --uid 65534 --gid 65534 --ro-bind / / --dev /dev --proc /proc
          --size N --tmpfs /tmp --size N --tmpfs /dev/shm --chdir /tmp

that is: no network (a network namespace with nothing in it), a private size-capped /tmp and
/dev/shm, everything else read-only, its own PID namespace (it sees and can signal only its own
processes, and /proc shows only those), no capabilities, no new user namespaces, nobody's uid, and
when the supervisor kills bwrap the kernel takes every process of the namespace with it.

A checkout or a virtual environment under /tmp (CI clones, say) would be hidden by the private
/tmp; the folders the harness needs are bound back in, read-only (`shadowed`). Where answers
could be looked up rather than computed (this package's data generators, `$UNIOPD_HOME`, the
Hugging Face cache) an empty tmpfs covers them (`hidden_paths`).

`UNIOPD_SANDBOX_ISOLATION` picks the mode: `auto` (default: bubblewrap if a probe job runs, the
Python layers otherwise, with one loud warning naming what is missing), `bwrap` (required: without
it every job is "could not grade") or `off` (the Python layers only, on purpose; said once too).
The Python layers are the audit hook, evalplus's reliability guard, rlimits, and, when the grader
runs as root, the program running as nobody.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)

MODES = ("auto", "bwrap", "off")
ENV_VAR = "UNIOPD_SANDBOX_ISOLATION"
NOBODY = 65534
HARNESS = str(Path(__file__).with_name("harness.py"))
# What the harness and the program get as their environment: nothing of the caller's.
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Isolation:
    kind: str  # "bwrap" | "python" | "none" (required bwrap is missing: jobs cannot be started)
    reason: str = ""  # why not bwrap, in words

    def describe(self) -> str:
        if self.kind == "bwrap":
            return "bubblewrap namespaces"
        return f"Python layers only ({self.reason})"


# Mount points the sandbox replaces with its own empty tmpfs.
PRIVATE = ("/tmp", "/dev/shm")


def site_paths() -> list[str]:
    """Where installed packages live: on the harness's sys.path (it skips site's start-up), and
    bound back into the sandbox when they lie under /tmp."""
    import site
    import sysconfig

    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return sorted({p for p in paths + site.getsitepackages() if os.path.isdir(p)})


def needed_paths() -> list[str]:
    """What the harness must see: the interpreter's environment (a venv), the harness's own
    folder and the installed packages."""
    paths = [sys.prefix, os.path.dirname(HARNESS), *site_paths()]
    return sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})


def shadowed(paths: list[str]) -> list[str]:
    """Those of `paths` that the private /tmp or /dev/shm would hide (a checkout or a venv under
    /tmp), without the ones inside another: they are bound back in, read-only."""
    hidden = [p for p in paths if any(p == m or p.startswith(m + "/") for m in PRIVATE)]
    return [p for p in hidden if not any(p != q and p.startswith(q + "/") for q in hidden)]


def hidden_paths() -> list[str]:
    """Folders where a program could look answers up instead of computing them, covered by an
    empty tmpfs in the sandbox: this package (its data generators; the harness's own folder is
    bound back), `$UNIOPD_HOME` (the world and its caches) and the Hugging Face cache (datasets).
    Everything else of the host stays visible, read-only."""
    from uniopd.home import uniopd_home

    package = os.path.dirname(os.path.dirname(HARNESS))
    hf = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    paths = [package, str(uniopd_home()), hf]
    return [os.path.realpath(p) for p in paths if os.path.isdir(p)]


def bwrap_prefix(tmp_bytes: int, status_fd: int | None = None) -> list[str]:
    """The bwrap command line up to the command it runs."""
    bwrap = shutil.which("bwrap") or "bwrap"
    status = ["--json-status-fd", str(status_fd)] if status_fd is not None else []
    size = str(tmp_bytes)
    back = [arg for p in shadowed(needed_paths()) for arg in ("--ro-bind", p, p)]
    own = os.path.realpath(os.path.dirname(HARNESS))
    hide = [arg for p in hidden_paths() for arg in ("--tmpfs", p)] + ["--ro-bind", own, own]
    # --disable-userns needs --unshare-user; --size applies to the --tmpfs after it
    return [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--size",
        size,
        "--tmpfs",
        "/tmp",
        "--size",
        size,
        "--tmpfs",
        "/dev/shm",
        *back,
        *hide,
        "--chdir",
        "/tmp",
        *status,
        "--",
    ]


def harness_command() -> list[str]:
    """The harness, run by this interpreter."""
    # -I: no PYTHON* variables, no user site; -S: no site start-up (.pth files cost ~60 ms and can
    # import anything); the harness puts site-packages on sys.path itself
    return [sys.executable, "-I", "-S", HARNESS]


@cache
def choose(mode: str | None = None) -> Isolation:
    """The isolation this process's sandboxes use; probed once, warned about once."""
    mode = (mode or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR}={mode!r}: must be one of {', '.join(MODES)}")
    if mode == "off":
        logger.warning(
            "code sandbox: isolation below Python is off (%s=off): programs run under the Python "
            "layers only (audit hook, evalplus guard, rlimits)",
            ENV_VAR,
        )
        return Isolation("python", f"{ENV_VAR}=off")
    problem = probe()
    if not problem:
        return Isolation("bwrap")
    if mode == "bwrap":
        logger.error(
            "code sandbox: bubblewrap is required (%s=bwrap) but %s; no program can be graded",
            ENV_VAR,
            problem,
        )
        return Isolation("none", problem)
    logger.warning(
        "code sandbox: NO ISOLATION BELOW PYTHON: %s. Falling back to the Python layers (audit "
        "hook, evalplus guard, rlimits, nobody's uid when root): no network, file system, PID or "
        "environment namespaces. Install bubblewrap (Debian: apt-get install bubblewrap) on a "
        "kernel that allows unprivileged user namespaces, or set %s=off to silence this.",
        problem,
        ENV_VAR,
    )
    return Isolation("python", problem)


def probe() -> str:
    """ "" when a bwrap job starts here, else what stops it, in words."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    # the real harness, given no job: it must start, find its files and answer (an error report)
    command = bwrap_prefix(1 << 20) + harness_command()
    try:
        done = subprocess.run(
            command, env=CLEAN_ENV, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be run: {exc}"
    if done.returncode != 0 or b'"status"' not in done.stdout:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap could not start a job: {said[-1] if said else f'exit {done.returncode}'}"
    return ""


@cache
def can_run_as_nobody() -> bool:
    """Without namespaces, a root grader runs the program as nobody, when nobody can still read
    Python and the installed packages (not so for a Python under /root)."""
    if os.geteuid() != 0:
        return False
    needed = [sys.executable, sysconfig.get_paths()["stdlib"], *site_paths()]
    return all(_world_readable(Path(p)) for p in needed)


def _world_readable(path: Path) -> bool:
    for part in [path.resolve(), *path.resolve().parents]:
        mode = part.stat().st_mode
        if mode & 0o005 != 0o005 and not (part.is_file() and mode & 0o004):
            return False
    return True
