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

    caller (the trainer) --pipes--> zygote: [bwrap ...] python -I -S zygote.py, started once
    zygote --clone--> relay, one per job, PID 1 of fresh namespaces --fork--> the program

The zygote is exec'd, never forked from the caller: nothing of the caller's memory or environment
is in it, and forking a 2 GB multi-threaded torch process per job would be slow and unsafe. It
starts once per Sandbox (about 0.1 s), proves with a self-test job that it can contain one, and
then forks a relay per job from a template that never held a job (uniopd/verifiers/zygote.py says
why that keeps programs from seeing each other). A zygote that dies or stops answering costs
only the jobs it held ("error", so "could not grade"), and the next batch starts a fresh one.
Isolation: uniopd/verifiers/isolation.py; the per-job namespaces: namespaces.py.
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from uniopd.verifiers import isolation
from uniopd.verifiers.isolation import Isolation
from uniopd.verifiers.plumbing import describe
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


# Seconds the caller lets a batch overrun its own wall times (the zygote's start and self-test
# included) before it gives the zygote up as stuck.
_BATCH_GRACE_S = 30.0
_START_S = 30.0


class SandboxStartError(RuntimeError):
    """The zygote could not be started or failed its self-test."""


class Sandbox:
    """The caller's handle: starts the zygote on first use and sends it one batch at a time.

    `isolation`: "auto" | "bwrap" | "off", default the UNIOPD_SANDBOX_ISOLATION variable, else
    "auto" (uniopd/verifiers/isolation.py); probed on first use."""

    def __init__(
        self, limits: Limits = Limits(), max_parallel: int = 4, isolation: str | None = None
    ):
        self.limits = limits
        self.max_parallel = max_parallel
        self.isolation_mode = isolation
        # jobs lost because the zygote died or stopped answering, and zygotes started
        self.counts = {"lost": 0, "started": 0}
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
            stdin.close()  # the zygote exits when its input ends and its jobs are done
            try:
                self._server.wait(timeout=self.limits.wall_s + 5.0)
            except subprocess.TimeoutExpired:
                self._kill_server()
            stdout.close()
        self._server = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _request(self, jobs: list[Job]) -> list[SandboxResult]:
        how = isolation.choose(self.isolation_mode)
        if how.kind == "none":
            return [SandboxResult("error", f"could not start: {how.reason}")] * len(jobs)
        try:
            server = self._ensure_server(how)
        except (OSError, SandboxStartError) as exc:
            self._kill_server()
            return [SandboxResult("error", f"could not start: {describe(exc)}")] * len(jobs)
        rounds = math.ceil(len(jobs) / self.max_parallel)
        deadline = time.monotonic() + _BATCH_GRACE_S + rounds * (self.limits.wall_s + 6.0)
        lines = [json.dumps({"id": i, "job": _spec(job)}) for i, job in enumerate(jobs)]
        reports = _exchange(server, "\n".join(lines).encode() + b"\n", len(jobs), deadline)
        if len(reports) < len(jobs):
            self._kill_server()  # stuck or dead: a fresh one serves the next batch
            self.counts["lost"] += len(jobs) - len(reports)
        lost = SandboxResult("error", "the sandbox died or stopped answering mid-batch")
        return [_parse_report(reports[i]) if i in reports else lost for i in range(len(jobs))]

    def _ensure_server(self, how: Isolation) -> subprocess.Popen[bytes]:
        if self._server is not None and (
            self._server_owner != os.getpid() or self._server.poll() is not None
        ):
            self._kill_server()
        if self._server is None:
            self._server = start_zygote(how, self.max_parallel, self.limits)
            self._server_owner = os.getpid()
            self.counts["started"] += 1
        return self._server

    def _kill_server(self) -> None:
        """Stop our zygote; a forked copy of the caller only lets go of its parent's."""
        if self._server is not None and self._server_owner == os.getpid():
            try:
                os.killpg(self._server.pid, 9)  # its own session: bwrap and all it holds
            except (ProcessLookupError, PermissionError):
                pass
            self._server.kill()
            self._server.wait()
            stdin, stdout = _pipes(self._server)
            stdin.close()
            stdout.close()
        self._server = None


def start_zygote(how: Isolation, max_parallel: int, limits: Limits):
    """A zygote that has passed its self-test (SandboxStartError with its words when it did not;
    bwrap's own are on the caller's stderr, and `isolation.probe` names them). The limits go in
    once, here: every job of the zygote's gets them."""
    config = {
        "namespaces": how.kind == "bwrap",
        "max_parallel": max_parallel,
        "limits": _limits(limits, how),
        "self_test_limits": isolation.self_test_limits(how.kind),
    }
    command = isolation.zygote_command(json.dumps(config))
    if how.kind == "bwrap":
        command = isolation.bwrap_prefix() + command
    # stderr is the caller's: bwrap's refusal, or a traceback of ours, stays visible
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=isolation.CLEAN_ENV,
        close_fds=True,
        start_new_session=True,
    )
    hello = _read_line(_pipes(proc)[1].fileno(), time.monotonic() + _START_S)
    said = json.loads(hello) if hello else {}
    if said.get("hello") is True:
        return proc
    proc.kill()
    proc.wait()
    raise SandboxStartError(said.get("problem") or f"the zygote exited ({proc.returncode})")


def _limits(limits: Limits, how: Isolation) -> dict:
    return {
        "wall_s": limits.wall_s,
        "memory_bytes": limits.memory_bytes,
        "file_bytes": limits.file_bytes,
        "open_files": limits.open_files,
        "tmp_bytes": limits.tmp_bytes,
        "keep_paths": isolation.shadowed(isolation.needed_paths()),
        "site_paths": isolation.site_paths(),
        "python_guard": how.kind != "bwrap",
        "run_as": [isolation.NOBODY] * 2
        if how.kind != "bwrap" and isolation.can_run_as_nobody()
        else None,
    }


def _spec(job: Job) -> dict:
    return {
        "mode": job.mode,
        "program": job.program,
        "entry_point": job.entry_point,
        "inputs": job.inputs,
    }


def _exchange(proc: subprocess.Popen[bytes], request: bytes, n: int, deadline: float) -> dict:
    """Send the batch and read reports until all n are in, the zygote ends or the deadline."""
    stdin, stdout = _pipes(proc)
    fd, writing = stdout.fileno(), memoryview(request)
    os.set_blocking(stdin.fileno(), False)  # a big batch and many reports must not deadlock
    reports: dict[int, str] = {}
    buffer = b""
    while len(reports) < n:
        left = deadline - time.monotonic()
        # Past the deadline, still take the reports already waiting: a caller that was stopped
        # (SIGSTOP, a suspended machine) while its jobs finished must not throw their work away.
        late = left <= 0
        out = [stdin.fileno()] if writing and not late else []
        readable, writable, _ = select.select([fd], out, [], max(left, 0.0))
        if late and not readable:
            break
        if writable:
            try:
                writing = writing[os.write(stdin.fileno(), writing) :]
            except BrokenPipeError:
                break
        if readable:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                message = json.loads(line)
                reports[message["id"]] = message["report"]
    return reports


def _read_line(fd: int, deadline: float) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b""
        chunk = os.read(fd, 1)
        if not chunk:
            return b""
        data += chunk
    return data


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The stdin and stdout of a process started with both as pipes (so neither is None)."""
    assert proc.stdin is not None and proc.stdout is not None
    return proc.stdin, proc.stdout


def _parse_report(data: str) -> SandboxResult:
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
