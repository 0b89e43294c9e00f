"""Run untrusted generated Python with real containment, a few programs at a time.

    sandbox = Sandbox(Limits(wall_s=3.0))
    results = sandbox.run([functools.partial(some_module_level_fn, program_text), ...])
    results[0].status  # "pass" | "fail" | "timeout" | "error"

A job is a picklable zero-argument callable (a `functools.partial` of a module-level function); it
passes when it returns and fails when it raises. "error" means the sandbox itself broke, never the
program: callers grade it as "could not grade", not as wrong.

Three kinds of process, and why:

    caller (the trainer) --pipe--> server: a fresh `python -c`, started once, never imports torch
    server --fork--> supervisor, one per job: own session, child subreaper, owns the temp dir
    supervisor --fork--> runner: own session, rlimits, evalplus guard, audit hook; runs the job

- The server exists because forking the trainer is slow and fragile: with 2 GB resident a fork
  costs ~70 ms of page-table copying, and a fork of a multi-threaded torch/CUDA process must not run
  anything but exec. The server is ~40 MB, so each fork below is well under a millisecond.
- The supervisor is a child subreaper (prctl), so anything the program manages to start, even after
  setsid() or a double fork, is re-parented to it; it SIGKILLs the runner's process group and then
  every remaining descendant before it reports. Nothing outlives its program.
- The runner stacks cheap layers: rlimits (address space, CPU seconds, file size, open files, no
  core dumps), evalplus's `reliability_guard` (nulls os.fork, os.system, subprocess.Popen, open,
  shutil.rmtree, ...), an audit hook that catches the same operations through the paths the guard
  misses (posix.fork, pathlib writes, ctypes, sockets) and refuses writes outside its temp dir,
  evalplus's `swallow_io` and `time_limit`, and stdio pointed at /dev/null. The hook is a tripwire
  for what ordinary (even reward-hacking) code does, not a proof against hand-crafted escapes; the
  process-level kill is the part that does not depend on Python.
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psutil
from evalplus.eval import create_tempdir, reliability_guard, swallow_io, time_limit
from evalplus.eval.utils import TimeoutException

from uniopd.verifiers.audit import audit_hook
from uniopd.verifiers.framing import recv_msg, send_msg

STATUSES = ("pass", "fail", "timeout", "error")


@dataclass(frozen=True)
class SandboxResult:
    status: str  # one of STATUSES
    detail: str = ""  # e.g. "AssertionError: case 2", "killed by SIGXCPU"


@dataclass(frozen=True)
class Limits:
    wall_s: float = 3.0  # per job; then its process group and all its descendants are SIGKILLed
    memory_bytes: int = 1 << 30  # address space the job may add on top of the interpreter's own
    file_bytes: int = 16 << 20  # the largest file it may write (inside its temp dir)
    open_files: int = 64


# Seconds the supervisor lets a runner overrun its own soft timer before killing it, and the server
# lets a supervisor overrun (killing, reaping and deleting the temp dir) before giving up on it.
_KILL_GRACE_S = 0.25
_SUPERVISOR_GRACE_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_MAX_FD = os.sysconf("SC_OPEN_MAX")
_libc = ctypes.CDLL(None, use_errno=True)


class Sandbox:
    """The caller's handle: starts the server on first use and sends it one batch at a time."""

    def __init__(self, limits: Limits = Limits(), max_parallel: int = 4):
        self.limits = limits
        self.max_parallel = max_parallel
        self._server: subprocess.Popen | None = None
        self._server_owner = 0  # pid that started it; a forked copy of the caller starts its own
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[Callable[[], object]]) -> list[SandboxResult]:
        results: list[SandboxResult | None] = [None] * len(jobs)
        payloads, slots = [], []
        for i, job in enumerate(jobs):
            try:
                payloads.append(pickle.dumps(job))
                slots.append(i)
            except Exception as exc:
                results[i] = SandboxResult("error", f"job is not picklable: {_describe(exc)}")
        if payloads:
            with self._lock:
                for i, result in zip(slots, self._request(payloads)):
                    results[i] = result
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self._server is not None and self._server_owner == os.getpid():
            self._server.stdin.close()  # the server exits when its input ends
            try:
                self._server.wait(timeout=_SUPERVISOR_GRACE_S)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server.stdout.close()
        self._server = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _request(self, payloads: list[bytes]) -> list[SandboxResult]:
        rounds = math.ceil(len(payloads) / self.max_parallel)
        deadline = time.monotonic() + 30.0 + rounds * (self.limits.wall_s + _KILL_GRACE_S + 1.0)
        try:
            server = self._ensure_server()
            send_msg(server.stdin.fileno(), (payloads, self.limits, self.max_parallel))
            results = recv_msg(server.stdout.fileno(), deadline)
            if results is None:
                raise EOFError("sandbox server exited")
            return results
        except (OSError, EOFError, TimeoutError, pickle.UnpicklingError) as exc:
            self._kill_server()  # a fresh one is started by the next call
            failed = SandboxResult("error", f"sandbox server failed: {_describe(exc)}")
            return [failed] * len(payloads)

    def _ensure_server(self) -> subprocess.Popen:
        if self._server is not None and (
            self._server_owner != os.getpid() or self._server.poll() is not None
        ):
            self._kill_server()
        if self._server is None:
            # The package root goes first on PYTHONPATH: the server runs this same code, installed
            # or not.
            path = [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
            self._server = subprocess.Popen(
                [sys.executable, "-c", "from uniopd.verifiers.sandbox import serve; serve()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
            self._server_owner = os.getpid()
        return self._server

    def _kill_server(self) -> None:
        """Stop our server; a forked copy of the caller only lets go of its parent's."""
        if self._server is not None and self._server_owner == os.getpid():
            self._server.kill()
            self._server.wait()
            self._server.stdin.close()
            self._server.stdout.close()
        self._server = None


# ---------------------------------------------------------------- server (its own interpreter)


def serve() -> None:
    """Answer batches on stdin/stdout until stdin closes."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print in the server goes to stderr instead of corrupting the replies
    while (request := recv_msg(0)) is not None:
        payloads, limits, max_parallel = request
        try:
            send_msg(reply_fd, _run_batch(payloads, limits, max_parallel))
        except BrokenPipeError:
            return  # the caller is gone


def _run_batch(payloads: list[bytes], limits: Limits, max_parallel: int) -> list[SandboxResult]:
    results: list[SandboxResult | None] = [None] * len(payloads)
    todo = deque(range(len(payloads)))
    running: dict[int, list] = {}  # report fd -> [job index, supervisor pid, deadline, bytes]
    while todo or running:
        while todo and len(running) < max_parallel:
            i = todo.popleft()
            try:
                job = pickle.loads(payloads[i])  # here, not in the child, so imports are paid once
            except Exception as exc:
                results[i] = SandboxResult("error", f"cannot unpickle job: {_describe(exc)}")
                continue
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _exit_after(_supervise, job, limits, write_fd)
            os.close(write_fd)
            running[read_fd] = [i, pid, time.monotonic() + limits.wall_s + _SUPERVISOR_GRACE_S, b""]
        if not running:
            continue
        wait = max(0.0, min(entry[2] for entry in running.values()) - time.monotonic())
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                running[fd][3] += chunk
                continue
            i, pid, _, data = running.pop(fd)
            os.close(fd)
            os.waitpid(pid, 0)
            results[i] = _decode(data) or SandboxResult("error", "supervisor died without a report")
        for fd in [fd for fd, entry in running.items() if entry[2] < time.monotonic()]:
            i, pid, _, _ = running.pop(fd)
            os.close(fd)
            _killpg(pid)
            os.waitpid(pid, 0)
            results[i] = SandboxResult("error", "supervisor did not report in time")
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------- supervisor (one per job)


def _supervise(job: Callable[[], object], limits: Limits, report_fd: int) -> None:
    os.setsid()  # the server can kill this whole group if the supervisor itself hangs
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _to_devnull(0, 1)
    _close_fds_except(report_fd)  # the other jobs' pipes and the server's protocol pipes
    result = SandboxResult("error", "supervisor failed")
    try:
        with create_tempdir() as workdir:  # evalplus: fresh dir, chdir'd into, deleted on exit
            result = _run_and_clean_up(job, limits, workdir)
    except OSError:
        pass  # the job left something we could not delete; its result stands
    os.write(report_fd, _encode(result))


def _run_and_clean_up(job: Callable[[], object], limits: Limits, workdir: str) -> SandboxResult:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _exit_after(_run_guarded, job, limits, workdir, write_fd)
    os.close(write_fd)
    deadline = time.monotonic() + limits.wall_s + _KILL_GRACE_S
    report = _read_line(read_fd, deadline)
    timed_out = report is None and time.monotonic() >= deadline
    os.close(read_fd)
    runner_status = _kill_all_descendants(pid)
    if report is not None:
        return _decode(report) or SandboxResult("fail", "garbled report")
    if timed_out:
        return SandboxResult("timeout", f"killed after {limits.wall_s:g}s")
    return SandboxResult("fail", _describe_exit(runner_status))


def _read_line(fd: int, deadline: float) -> bytes | None:
    """The runner's one-line report, or None if it closed the pipe or ran out of time first."""
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
        if b"\n" in data or len(data) > 65536:  # a flood without a newline is garbage anyway
            return data.split(b"\n", 1)[0]
    return None


def _kill_all_descendants(runner_pid: int) -> int | None:
    """SIGKILL the runner's group, then every child (escapees are re-parented to us); reap all.

    Returns the runner's wait status. Killing the group first matters: the kernel makes that atomic
    with respect to fork, so the group cannot grow while it is being killed.
    """
    runner_status = None
    _killpg(runner_pid)
    while True:
        for pid in _child_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return runner_status
        if pid == runner_pid:
            runner_status = status


def _child_pids() -> list[int]:
    try:  # cheap where the kernel has CONFIG_PROC_CHILDREN
        return [int(p) for p in Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()]
    except FileNotFoundError:
        return [p.pid for p in psutil.Process().children()]


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "runner vanished"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"  # SIGXCPU, SIGSEGV, ...
        except ValueError:  # a real-time signal has no name
            return f"killed by signal {number}"
    return f"exited with code {os.WEXITSTATUS(status)} before finishing"  # e.g. os._exit(0)


# ---------------------------------------------------------------- runner (the job's own process)


def _run_guarded(job: Callable[[], object], limits: Limits, workdir: str, report_fd: int) -> None:
    os.setsid()  # its own process group: the supervisor kills the group, not a list of pids
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # an exec'd setuid binary stays ours to kill
    _to_devnull(0, 1, 2)
    _close_fds_except(report_fd)
    os.environ.clear()  # the caller's tokens (HF, wandb) are none of the program's business
    cpu_s = math.ceil(limits.wall_s) + 1
    for rlimit, value in [
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]:
        resource.setrlimit(rlimit, (value, value))
    sys.dont_write_bytecode = True  # imports would try to write .pyc files outside workdir
    # The limit counts the address space we inherited, so it is set relative to it.
    reliability_guard(maximum_memory_bytes=_address_space_bytes() + limits.memory_bytes)
    sys.addaudithook(audit_hook(workdir))
    write = os.write  # bound now: the job may replace os.write
    try:
        with swallow_io(), time_limit(limits.wall_s):  # a soft timer, for a clean "timeout" report
            job()
        verdict = "pass\t"
    except TimeoutException:
        verdict = f"timeout\tover {limits.wall_s:g}s"
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from the program are fails too
        verdict = f"fail\t{_describe(exc)}"
    write(report_fd, verdict.replace("\n", " ").encode("utf-8", "replace") + b"\n")


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:300]
    except BaseException:  # a program-defined __str__ can raise anything
        return type(exc).__name__


def _address_space_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------- plumbing


def _exit_after(fn: Callable, *args) -> NoReturn:
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


def _to_devnull(*fds: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd)
    os.close(null)


def _close_fds_except(keep: int) -> None:
    os.closerange(3, keep)
    os.closerange(keep + 1, _MAX_FD)


def _killpg(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group may not exist yet if the child has not run setsid
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _encode(result: SandboxResult) -> bytes:
    return f"{result.status}\t{result.detail}".replace("\n", " ").encode("utf-8", "replace") + b"\n"


def _decode(data: bytes) -> SandboxResult | None:
    status, _, detail = data.decode("utf-8", "replace").strip("\n").partition("\t")
    return SandboxResult(status, detail) if status in STATUSES else None
