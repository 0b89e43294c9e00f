"""The sandbox runner's audit hook: a tripwire on what ordinary generated code does.

evalplus's `reliability_guard` nulls os.fork, open, subprocess.Popen and friends, but not the
paths around them (posix.fork, io.open, pathlib, ctypes, sockets); a Python audit hook sees those
too. It refuses new processes and signals outright, allows writes only inside the job's temp dir, and
refuses other processes' /proc entries (their environment, fds and memory). It is not a proof against hand-crafted escapes: the supervisor's process-group kill is.
"""

from __future__ import annotations

import os
from collections.abc import Callable

# Events refused outright: new processes, signals to others (the supervisor, the caller), and the
# operations that would make the path check below meaningless (chdir, links).
_FORBIDDEN_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "os.chdir",
        "os.fchdir",
        "os.chroot",
        "os.symlink",
        "os.link",
    }
)
_FORBIDDEN_PREFIXES = ("ctypes.", "socket.")
# Events allowed only when every path argument lies inside the job's temp dir.
_PATH_EVENTS = frozenset(
    {
        "os.remove",
        "os.rmdir",
        "os.rename",
        "os.truncate",
        "os.chmod",
        "os.chown",
        "os.mkdir",
        "os.utime",
        "os.chflags",
        "os.lchflags",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def audit_hook(workdir: str) -> Callable[[str, tuple], None]:
    roots = tuple({workdir, os.path.realpath(workdir)})
    # Everything the hook uses is bound here, so a job that rebinds module globals cannot disarm it.
    join, normpath, fsdecode, sep = os.path.join, os.path.normpath, os.fsdecode, os.sep
    forbidden, prefixes, path_events = _FORBIDDEN_EVENTS, _FORBIDDEN_PREFIXES, _PATH_EVENTS
    write_flags, path_types = _WRITE_FLAGS, (str, bytes, os.PathLike)
    own = str(os.getpid())

    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # a file descriptor it already holds, opened under these rules
        try:
            full = normpath(join(roots[0], fsdecode(path)))
        except (TypeError, ValueError):
            return False
        return any(full == root or full.startswith(root + sep) for root in roots)

    def other_process(path) -> bool:
        # /proc/<pid>/environ, /fd, /mem of the grader or the caller: only our own is ours
        if not isinstance(path, (str, bytes)):
            return False
        parts = normpath(fsdecode(path)).split(sep)
        return len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != own

    def hook(event: str, args: tuple) -> None:
        if event in forbidden or event.startswith(prefixes):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, _mode, flags = args
            if other_process(path):
                raise PermissionError(f"sandbox: another process's /proc entry: {path!r}")
            if flags & write_flags and not inside(path):
                raise PermissionError(f"sandbox: writing outside the temp dir: {path!r}")
        elif event == "sqlite3.connect":  # creates its database file without an "open" event
            if args and isinstance(args[0], path_types) and str(args[0]) != ":memory:":
                if not inside(args[0]):
                    raise PermissionError(f"sandbox: a database outside the temp dir: {args[0]!r}")
        elif event in path_events:
            if not all(inside(a) for a in args if isinstance(a, path_types)):
                raise PermissionError(f"sandbox: {event} outside the temp dir")

    return hook
