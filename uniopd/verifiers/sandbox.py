"""Run untrusted generated Python with containment below Python, a few programs at a time.

    sandbox = Sandbox(Limits(wall_s=3.0))
    results = sandbox.run([Job("call", program, "f", inputs=[encode([2]), encode([3])])])
    results[0].status   # "ran" | "fail" | "timeout" | "error"
    results[0].results  # [("out", 4), ("out", 6)]: what the program's f returned, per case

A job carries a program and its test *inputs*, never the expected outputs: the sandbox returns what
the program produced and the caller (uniopd/verifiers/code.py) compares. "ran" means every case was
run to its end (a case may have raised), "fail" that the program's process broke off (killed by a
limit, exited early, or wrote on the report channel itself), "error" that the sandbox itself broke
or could not start: callers grade it as "could not grade", not as wrong.

Processes, and why:

    caller (the trainer) --pipe--> server: a fresh `python -c`, started once, never imports torch
    server --fork--> supervisor, one per job: own session, child subreaper
    supervisor --exec--> [bwrap ...] python -I -S harness.py: the job's own namespaces, empty env
    harness --fork--> the program's process: rlimits, audit hook; streams one frame per case

- The server exists because forking the trainer is slow and fragile (2 GB resident: ~70 ms of
  page tables per fork, and a fork of a multi-threaded torch/CUDA process must not run anything
  but exec). The server is ~40 MB, so each fork below is well under a millisecond.
- The supervisor is a child subreaper (prctl), so anything the program manages to start, even after
  setsid() or a double fork, is re-parented to it; it SIGKILLs every remaining descendant before
  it reports. Under bubblewrap the PID namespace makes that the kernel's job as well.
- The harness is exec'd, not forked: nothing of the caller's memory or environment is in it. It
  holds the report channel and never runs the program's code (uniopd/verifiers/harness.py says how
  the program's frames are checked). Isolation: uniopd/verifiers/isolation.py.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import pickle
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from uniopd.verifiers import isolation, processes
from uniopd.verifiers.framing import recv_msg, send_msg
from uniopd.verifiers.plumbing import describe, to_devnull
from uniopd.verifiers.values import decode

STATUSES = ("ran", "fail", "timeout", "error")
MODES = ("call", "stdio", "source")


@dataclass(frozen=True)
class Job:
    """One program and the inputs to run it on.

    mode "call": `inputs` holds each case's argument list, encoded with `values.encode`, and the
    program's `entry_point` is called on each; "stdio": `inputs` holds each case's stdin text and
    the program runs as a script; "source": `inputs` is [test source] run after the program (the
    one mode where the verdict comes from inside the sandbox).
    """

    mode: str
    program: str
    entry_point: str | None
    inputs: list = field(default_factory=list)


@dataclass(frozen=True)
class SandboxResult:
    status: str  # one of STATUSES
    detail: str = ""  # e.g. "killed by SIGXCPU", "malformed report: ..."
    # per case run: ("out", value) | ("stdout", text) | ("verdict", "pass") | ("raised", text)
    results: tuple = ()


@dataclass(frozen=True)
class Limits:
    wall_s: float = 3.0  # per job; then everything it started is SIGKILLed
    memory_bytes: int = 1 << 30  # address space the job may add on top of the interpreter's own
    file_bytes: int = 16 << 20  # the largest file it may write
    open_files: int = 64
    tmp_bytes: int = 64 << 20  # size of its private /tmp and /dev/shm (under bubblewrap)


# Seconds the supervisor lets a harness overrun its own timer (start-up of bwrap and Python
# included), and the server lets a supervisor overrun (killing, reaping) before giving up on it.
_HARNESS_GRACE_S = 5.0
_SUPERVISOR_GRACE_S = 5.0
_REPORT_BYTES = 32 << 20
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


class Sandbox:
    """The caller's handle: starts the server on first use and sends it one batch at a time.

    `isolation`: "auto" | "bwrap" | "off", default the UNIOPD_SANDBOX_ISOLATION variable, else
    "auto" (uniopd/verifiers/isolation.py); probed on first use."""

    def __init__(
        self, limits: Limits = Limits(), max_parallel: int = 4, isolation: str | None = None
    ):
        self.limits = limits
        self.max_parallel = max_parallel
        self.isolation_mode = isolation
        self._server: subprocess.Popen[bytes] | None = None
        self._server_owner = 0  # pid that started it; a forked copy of the caller starts its own
        self._lock = threading.Lock()

    def isolation(self) -> str:
        """What contains the programs here, in words (probing it if no job has run yet)."""
        return isolation.choose(self.isolation_mode).describe()

    def run(self, jobs: Sequence[Job]) -> list[SandboxResult]:
        for i, job in enumerate(jobs):
            if not isinstance(job, Job) or job.mode not in MODES:
                raise TypeError(f"job {i}: a Job with mode in {MODES} expected, got {job!r:.80}")
        if not jobs:
            return []
        with self._lock:
            return self._request(list(jobs))

    def close(self) -> None:
        if self._server is not None and self._server_owner == os.getpid():
            stdin, stdout = _pipes(self._server)
            stdin.close()  # the server exits when its input ends
            try:
                self._server.wait(timeout=_SUPERVISOR_GRACE_S)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            stdout.close()
        self._server = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _request(self, jobs: list[Job]) -> list[SandboxResult]:
        rounds = math.ceil(len(jobs) / self.max_parallel)
        per_round = self.limits.wall_s + _HARNESS_GRACE_S + 1.0
        deadline = time.monotonic() + 30.0 + rounds * per_round
        how = isolation.choose(self.isolation_mode)
        try:
            stdin, stdout = _pipes(self._ensure_server())
            send_msg(stdin.fileno(), (jobs, self.limits, how, self.max_parallel))
            results = recv_msg(stdout.fileno(), deadline)
            if results is None:
                raise EOFError("sandbox server exited")
            return results
        except (OSError, EOFError, TimeoutError, pickle.UnpicklingError) as exc:
            self._kill_server()  # a fresh one is started by the next call
            failed = SandboxResult("error", f"sandbox server failed: {describe(exc)}")
            return [failed] * len(jobs)

    def _ensure_server(self) -> subprocess.Popen[bytes]:
        if self._server is not None and (
            self._server_owner != os.getpid() or self._server.poll() is not None
        ):
            self._kill_server()
        if self._server is None:
            # This very code, installed or not: the package root goes first on sys.path, ahead
            # of the current directory, which `python -c` would otherwise put first (a checkout
            # in the cwd must not replace the code that started the server).
            root = str(Path(__file__).resolve().parents[2])
            start = f"import sys; sys.path.insert(0, {root!r}); "
            self._server = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    start + "from uniopd.verifiers.sandbox import serve; serve()",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            self._server_owner = os.getpid()
        return self._server

    def _kill_server(self) -> None:
        """Stop our server; a forked copy of the caller only lets go of its parent's."""
        if self._server is not None and self._server_owner == os.getpid():
            self._server.kill()
            self._server.wait()
            stdin, stdout = _pipes(self._server)
            stdin.close()
            stdout.close()
        self._server = None


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The stdin and stdout of a process started with both as pipes (so neither is None)."""
    assert proc.stdin is not None and proc.stdout is not None
    return proc.stdin, proc.stdout


# ---------------------------------------------------------------- server (its own interpreter)


def serve() -> None:
    """Answer batches on stdin/stdout until stdin closes."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print in the server goes to stderr instead of corrupting the replies
    while (request := recv_msg(0)) is not None:
        jobs, limits, how, max_parallel = request
        try:
            send_msg(reply_fd, _run_batch(jobs, limits, how, max_parallel))
        except BrokenPipeError:
            return  # the caller is gone


def _run_batch(
    jobs: list[Job], limits: Limits, how: isolation.Isolation, max_parallel: int
) -> list[SandboxResult]:
    results: dict[int, SandboxResult] = {}  # job index -> its result, every job's by the end
    todo = deque(range(len(jobs)))
    running: dict[int, list] = {}  # report fd -> [job index, supervisor pid, deadline, bytes]
    grace = limits.wall_s + _HARNESS_GRACE_S + _SUPERVISOR_GRACE_S
    while todo or running:
        while todo and len(running) < max_parallel:
            i = todo.popleft()
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                processes.exit_after(_supervise, jobs[i], limits, how, write_fd)
            os.close(write_fd)
            running[read_fd] = [i, pid, time.monotonic() + grace, b""]
        wait = max(0.0, min(entry[2] for entry in running.values()) - time.monotonic())
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                running[fd][3] += chunk
                continue
            i, pid, _, data = running.pop(fd)
            os.close(fd)
            os.waitpid(pid, 0)
            results[i] = _unpickle_result(data)
        for fd in [fd for fd, entry in running.items() if entry[2] < time.monotonic()]:
            i, pid, _, _ = running.pop(fd)
            os.close(fd)
            processes.killpg(pid)
            os.waitpid(pid, 0)
            results[i] = SandboxResult("error", "supervisor did not report in time")
    return [results[i] for i in range(len(jobs))]


def _unpickle_result(data: bytes) -> SandboxResult:
    try:
        result = pickle.loads(data)  # written by our own supervisor, never by the program
    except Exception:
        return SandboxResult("error", "supervisor died without a report")
    return result if isinstance(result, SandboxResult) else SandboxResult("error", "bad report")


# ---------------------------------------------------------------- supervisor (one per job)


def _supervise(job: Job, limits: Limits, how: isolation.Isolation, report_fd: int) -> None:
    os.setsid()  # the server can kill this whole group if the supervisor itself hangs
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    to_devnull(0, 1)
    processes.close_fds_except(report_fd)  # the other jobs' pipes and the server's protocol pipes
    result = SandboxResult("error", "supervisor failed")
    try:
        if how.kind == "bwrap":
            result = _run_harness(job, limits, how, "/tmp")  # bwrap's private tmpfs
        else:
            with tempfile.TemporaryDirectory(prefix="uniopd-job-") as workdir:
                if os.geteuid() == 0:
                    os.chown(workdir, isolation.NOBODY, isolation.NOBODY)
                result = _run_harness(job, limits, how, workdir)
    except OSError as exc:
        if result.status == "error":
            result = SandboxResult("error", f"supervisor: {describe(exc)}")
    os.write(report_fd, pickle.dumps(result))


def _run_harness(job: Job, limits: Limits, how: isolation.Isolation, workdir: str) -> SandboxResult:
    if how.kind == "none":
        return SandboxResult("error", f"could not start: {how.reason}")
    spec = {
        **asdict(job),
        "wall_s": limits.wall_s,
        "memory_bytes": limits.memory_bytes,
        "file_bytes": limits.file_bytes,
        "open_files": limits.open_files,
        "site_paths": isolation.site_paths(),
        "python_guard": how.kind != "bwrap",
        "workdir": workdir,
        "run_as": [isolation.NOBODY] * 2
        if how.kind != "bwrap" and isolation.can_run_as_nobody()
        else None,
    }
    status_r, status_w = os.pipe()
    command = isolation.harness_command()
    if how.kind == "bwrap":
        command = isolation.bwrap_prefix(limits.tmp_bytes, status_w) + command
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=isolation.CLEAN_ENV,
            close_fds=True,
            pass_fds=(status_w,),
        )
    except OSError as exc:
        return SandboxResult("error", f"could not start the harness: {describe(exc)}")
    finally:
        os.close(status_w)
    deadline = time.monotonic() + limits.wall_s + _HARNESS_GRACE_S
    stdin, stdout = _pipes(proc)
    try:
        stdin.write(json.dumps(spec).encode())
        stdin.close()
    except BrokenPipeError:
        pass  # it died at start; what it left (nothing) is read below
    report = _read_all(stdout.fileno(), deadline, _REPORT_BYTES)
    stdout.close()
    processes.kill_all_descendants(proc.pid)
    status = _read_all(status_r, time.monotonic() + 1.0, 1 << 16) or b""
    started = how.kind != "bwrap" or b"child-pid" in status
    os.close(status_r)
    if not started:
        return SandboxResult("error", "could not start: bwrap failed to set up the sandbox")
    if report is None:
        # the harness never answered in time; only the program can have stopped it
        return SandboxResult("timeout", f"no report {limits.wall_s + _HARNESS_GRACE_S:g}s in")
    return _parse_report(report)


def _parse_report(data: bytes) -> SandboxResult:
    if not data:  # the harness died without a word: the only process that can kill it is the
        # program's (same uid inside the sandbox), so this is the program's doing, not "no grade"
        return SandboxResult("fail", "the harness was stopped before it reported")
    try:
        report = json.loads(data)
        status, detail = report["status"], str(report["detail"])
        results = tuple(
            (kind, _decode_payload(kind, payload)) for kind, payload in report["results"]
        )
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        return SandboxResult("fail", f"unreadable report: {describe(exc)}")
    if status not in STATUSES:
        return SandboxResult("error", f"harness reported {status!r}")
    return SandboxResult(status, detail, results)


def _decode_payload(kind: str, payload: object) -> object:
    if kind == "out":
        return decode(payload)
    if type(payload) is not str:
        raise TypeError(f"a {kind} frame holds {type(payload).__name__}, not text")
    return payload


def _read_all(fd: int, deadline: float, limit: int) -> bytes | None:
    """Everything until EOF (at most about `limit` bytes); None if the deadline comes first."""
    data = b""
    while len(data) <= limit:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return data
        data += chunk
    return data
