"""Process-tree housekeeping inside the sandbox: close inherited descriptors and kill whatever a
job started, including processes that escaped their group and were re-parented to us (a child
subreaper).

Standard library only: the zygote and the harness import this file by path, inside the sandbox.
"""

from __future__ import annotations

import os
import signal

MAX_FD = os.sysconf("SC_OPEN_MAX")


def kill_all_descendants(spare: frozenset[int] = frozenset()) -> None:
    """SIGKILL every child but `spare` (escapees are re-parented to a subreaper) until none is
    left, and reap them all."""
    while True:
        victims = [pid for pid in child_pids() if pid not in spare]
        for pid in victims:
            killpg(pid)
        reaped = reap(spare)
        if not victims and not reaped:
            return


def end_the_namespace() -> None:
    """As PID 1 of a PID namespace: SIGKILL every other process in it and reap them all, so that
    nothing of the job outlives its report (one kill(-1) reaches each of them: a process that was
    forking when it was signalled never finishes the fork; we repeat it all the same)."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def reap(spare: frozenset[int] = frozenset()) -> list[int]:
    """Collect every exited child but `spare`'s without waiting; their pids."""
    done = []
    for pid in child_pids():
        if pid in spare:
            continue
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                done.append(pid)
        except ChildProcessError:
            pass
    return done


def child_pids() -> list[int]:
    """Our children, zombies included, from /proc (cheap where the kernel keeps the list)."""
    me = os.getpid()
    try:
        return [int(p) for p in open(f"/proc/self/task/{me}/children").read().split()]
    except FileNotFoundError:
        return [pid for pid in _all_pids() if _parent(pid) == me]


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def exit_after(fn, *args):
    """Run fn in a forked child and leave with os._exit: the child never unwinds into its
    parent's code (a relay must not go on as a second template). A bug prints its traceback on
    stderr, the caller's."""
    code = 1
    try:
        fn(*args)
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def close_fds_except(*keep: int) -> None:
    last = 2
    for fd in sorted(keep):
        os.closerange(last + 1, fd)
        last = fd
    os.closerange(last + 1, MAX_FD)


def killpg(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group may not exist yet if the child has not run setsid
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
