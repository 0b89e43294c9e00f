"""Process-tree housekeeping for the sandbox's server and supervisor: fork a child that never
returns into its parent, close inherited descriptors, and kill a job's whole tree, including
processes that escaped their group and were re-parented to the supervisor (a subreaper)."""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import psutil

MAX_FD = os.sysconf("SC_OPEN_MAX")


def kill_all_descendants(first_pid: int) -> None:
    """SIGKILL every child (escapees are re-parented to us) until none is left; reap all."""
    killpg(first_pid)
    while True:
        for pid in child_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def child_pids() -> list[int]:
    try:  # cheap where the kernel has CONFIG_PROC_CHILDREN
        return [int(p) for p in Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()]
    except FileNotFoundError:
        return [p.pid for p in psutil.Process().children()]


def exit_after(fn: Callable, *args) -> NoReturn:
    """Run fn in a forked child and leave with os._exit, so the child never unwinds into its
    parent's stack or runs its parent's atexit handlers."""
    code = 1
    try:
        fn(*args)
        code = 0
    except BaseException:
        traceback.print_exc()  # the supervisor's stderr is the server's: a bug here stays visible
    finally:
        os._exit(code)


def close_fds_except(keep: int) -> None:
    os.closerange(3, keep)
    os.closerange(keep + 1, MAX_FD)


def killpg(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group may not exist yet if the child has not run setsid
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
