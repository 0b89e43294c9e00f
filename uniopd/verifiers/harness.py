"""The grader's half inside the sandbox: one job's relay and the program's process.

The zygote (uniopd/verifiers/zygote.py) forks a relay per job and hands it two pipes: the job, as
one JSON document, and the report channel, where the relay writes one JSON line:

    job    {"mode": "call" | "stdio" | "source", "program", "entry_point", "inputs": [...]}
           and the limits, the same for every job of a zygote and so sent once, at its start:
           "wall_s", "memory_bytes", "file_bytes", "open_files", "tmp_bytes", "keep_paths",
           "site_paths", "python_guard", "run_as" (a job's own override them: the self-test's)
    report {"status": "ran" | "fail" | "timeout" | "error", "results": [[kind, payload], ...],
            "detail": str}

Processes, and why. Under namespaces the relay is born in fresh ones as their PID 1
(namespaces.clone_fresh), mounts its own /tmp, drops every privilege and forks the program's
process: two processes a job, where a relay that unshared and then forked a PID 1 made three.
Without namespaces the relay makes a temp dir of the job's own and forks the program's process.
The relay never runs a line of the program. The program's process streams one frame per case over a pipe
({"case": i, "out": value} and so on), and the relay checks the frames (in order, well formed,
bounded) and alone holds the report channel, which the program cannot reach: the fd is closed in
its process, the relay is not dumpable (no /proc/<pid>/fd, no ptrace) and, under namespaces, has
no capability to lose, an empty /proc to hide in and, as PID 1, no signal the program can send it. So a program can choose what its function returns, which
is what it is graded on, and nothing else: the expected values are never in the sandbox, the
comparison happens outside it, and a frame out of order or after the end makes the report a fail.
The one exception is mode "source" (Python test source that could not be turned into cases), where
the tests, and so the expected values, must run beside the program: its "pass" is the program's
word, which is why the verifier logs that mode as less trustworthy.
"""

from __future__ import annotations

import ctypes
import io
import json
import math
import os
import resource
import signal
import sys
import time

# appended, not first: our math.py and code.py must not shadow the standard library
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
import namespaces  # noqa: E402  (by path: this runs outside the package)
import processes  # noqa: E402
from audit import audit_hook  # noqa: E402
from frames import FrameReader  # noqa: E402
from plumbing import describe, to_devnull, write_all  # noqa: E402
from values import decode, encode  # noqa: E402

_exit = os._exit  # bound now: the program may replace os._exit
# once, in the template: a relay or a program that opened libc again would pay for it every job
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
# A program may print at most this much per stdin/stdout case.
STDOUT_BYTES = 4 << 20
KINDS = {"call": "out", "stdio": "stdout", "source": "verdict"}
# Processes a program may start (under namespaces, where the whole sandbox is one uid's)
PROCESSES_PER_JOB = 64


def run_job(job_fd: int, report_fd: int, setting: dict) -> None:
    """The relay, in a process the template forked (or, under namespaces, cloned into fresh ones)
    for this job: read the job, contain it, run it, write one report line. Nothing here raises: a
    setup failure is an "error" report. `setting`: the zygote's "namespaces", the "limits" every
    job gets unless it brings its own, the "bounding" capabilities to drop, the template's
    "address_space" (`address_space_bytes`), which every relay shares, and, under namespaces, the
    "processes_before" the template counted for this relay."""
    # Python's SIGINT handler would turn a signal from the program into an exception here, and
    # the job into "could not grade"; by default, PID 1 ignores it and any other relay dies (a fail)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        job = {**setting["limits"], **json.loads(_read_to_end(job_fd))}
        os.close(job_fd)
        processes.close_fds_except(report_fd)
        job["address_space"] = setting["address_space"]
        if setting["namespaces"]:
            # counted by the template just before our clone (our /proc is sealed)
            job["processes_before"] = setting["processes_before"]
            report = _as_init_of_the_job(job, setting["bounding"])
        else:
            report = _in_own_temp_dir(job)
    except BaseException as exc:  # a harness bug is "could not grade", never a fail
        report = {"status": "error", "results": [], "detail": f"could not start: {describe(exc)}"}
    write_all(report_fd, json.dumps(report).encode() + b"\n")


def _as_init_of_the_job(job: dict, bounding: list[int]) -> dict:
    """PID 1 of the job's fresh namespaces: its own /tmp, /dev/shm, no /proc; no privileges left;
    then the program's process as our child. The program cannot signal us (PID 1 gets no signal
    it has no handler for, and we have none), trace us or read our fds (not dumpable, no
    capabilities), nor see anything outside its namespaces. Before the report, every process of
    the job is killed and reaped."""
    # RLIMIT_NPROC counts every process of our uid in the sandbox (the zygote's, the other jobs'):
    # the program may add PROCESSES_PER_JOB to what ran at our start (job["processes_before"])
    namespaces.mount_fresh(job["tmp_bytes"], job["keep_paths"])
    # a session of its own is a scheduler autogroup of its own: CPU is shared fairly between
    # jobs, not between processes, so a fork bomb beside an honest program cannot starve it
    # (RLIMIT_NPROC cannot stop the bomb where the grader is root)
    os.setsid()
    namespaces.drop_privileges(bounding)
    report = supervise_child({**job, "workdir": "/tmp"})
    processes.end_the_namespace()
    return report


def preload_python_guard(site_paths: list[str]) -> None:
    """Import evalplus's guard once, in the zygote's template, not in every job: the import
    (numpy among it) is 175 ms of CPU, more than everything else a job costs. Single-threaded
    BLAS, so that the template forks no thread pool's half."""
    os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    sys.path.extend(p for p in site_paths if p not in sys.path)
    import evalplus.eval  # noqa: F401


def _in_own_temp_dir(job: dict) -> dict:
    """Without namespaces: a temp dir of the job's own, removed with everything the program
    started (the relay is a child subreaper, so even escaped daemons are re-parented to it)
    before the report leaves, so no later job meets any of it."""
    import shutil  # (here: every module the template holds makes each fork dearer)
    import tempfile

    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    workdir = tempfile.mkdtemp(prefix="uniopd-job-")
    try:
        if job["run_as"] is not None:
            os.chown(workdir, *job["run_as"])
        return supervise_child({**job, "workdir": workdir})
    finally:
        processes.kill_all_descendants()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- this process: the relay


def supervise_child(job: dict) -> dict:
    """Run the job's program below this process; its report, from the frames it sent."""
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)  # before fork: no ptrace, no /proc/<us>/fd
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            run_child(job, write_fd)
            code = 0
        finally:
            _exit(code)
    os.close(write_fd)
    deadline = time.monotonic() + job["wall_s"]
    reader = FrameReader(len(job["inputs"]), KINDS[job["mode"]])
    timed_out = not reader.read(read_fd, deadline)
    os.close(read_fd)
    # the program's group (without namespaces it made its own; under them, the relay, PID 1, ends
    # the rest of the namespace after this)
    processes.killpg(pid)
    _, status = os.waitpid(pid, 0)
    report = {"results": [[k, v] for k, v in reader.results], "detail": reader.problem}
    if reader.setup_error:
        return {**report, "status": "error", "detail": f"harness: {reader.setup_error}"}
    if reader.problem:
        return {**report, "status": "fail"}
    if reader.done:
        return {**report, "status": "ran"}
    if timed_out:
        return {**report, "status": "timeout", "detail": f"over {job['wall_s']:g}s"}
    return {**report, "status": "fail", "detail": _describe_exit(status)}


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- the child: runs the program


def run_child(job: dict, frame_fd: int) -> None:
    send = _sender(frame_fd)
    try:
        inputs = _prepare(job, frame_fd)
    except BaseException as exc:
        send([{"setup_error": describe(exc)}])
        return
    send([{"ready": True}])  # from here on the program runs; nothing it sends can be "setup"
    # The cases' frames leave in one write at the end: one wake-up of the relay, not one a case.
    # A program that dies or hangs half-way fails whether its first cases were sent or not.
    frames: list[dict] = []
    run = {"call": _run_calls, "stdio": _run_scripts, "source": _run_source}[job["mode"]]
    run(job, inputs, frames.append)
    send([*frames, {"done": True}])


def _prepare(job: dict, frame_fd: int) -> list:
    """Everything before the program's first line: own group, fds, limits, guards."""
    if job["python_guard"]:  # its own group, so the relay's kill takes what it starts with it
        os.setsid()  # (and its own autogroup; under namespaces the job's PID 1 did both)
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    to_devnull(0, 1, 2)
    os.closerange(3, frame_fd)
    os.closerange(frame_fd + 1, os.sysconf("SC_OPEN_MAX"))
    os.chdir(job["workdir"])
    os.environ.clear()
    # installed packages importable, without site's start-up
    sys.path.extend(p for p in job["site_paths"] if p not in sys.path)
    inputs = [decode(x) for x in job["inputs"]]
    if job["run_as"] is not None:  # no namespaces and we are root: become nobody
        uid, gid = job["run_as"]
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    cpu_s = math.ceil(job["wall_s"]) + 1
    for rlimit, value in [
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_FSIZE, job["file_bytes"]),
        (resource.RLIMIT_NOFILE, job["open_files"]),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_AS, job["address_space"] + job["memory_bytes"]),
    ]:
        resource.setrlimit(rlimit, (value, value))
    if "processes_before" in job:  # a fork bomb stops at its own share, not the neighbours'
        cap = job["processes_before"] + PROCESSES_PER_JOB
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))
    sys.dont_write_bytecode = True
    if job["python_guard"]:  # no namespaces: evalplus's guard as well (nulls fork, open, ...)
        import _posixshmem
        import posix

        from evalplus.eval import reliability_guard

        reliability_guard()
        for name in ("mkfifo", "mknod"):  # make files without an audit event; a tripwire only
            setattr(os, name, None)
            setattr(posix, name, None)
        # /dev/shm segments outlive the job and raise no audit event: a channel to later jobs
        _posixshmem.shm_open = _posixshmem.shm_unlink = None
    sys.addaudithook(audit_hook(job["workdir"]))
    return inputs


def _sender(fd: int):
    write, dumps = os.write, json.dumps  # bound now: the program may replace os.write or json

    def send(frames: list[dict]) -> None:
        data = memoryview(b"".join(dumps(frame).encode() + b"\n" for frame in frames))
        while data:
            data = data[write(fd, data) :]

    return send


def _run_calls(job: dict, inputs: list, send) -> None:
    namespace = _exec_program(job["program"])
    fn = namespace.get(job["entry_point"])
    if not callable(fn):
        send(
            {"case": 0, "raised": f"NameError: the program does not define {job['entry_point']}()"}
        )
        return
    for i, args in enumerate(inputs):
        try:
            out = fn(*args)
            payload = encode(out)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from the program too
            send({"case": i, "raised": describe(exc)})
            return
        send({"case": i, "out": payload})


def _run_scripts(job: dict, inputs: list, send) -> None:
    code = _compile_or_report(job["program"], send)
    if code is None:
        return
    for i, given in enumerate(inputs):
        try:
            printed = _run_as_script(code, given)
        except BaseException as exc:
            send({"case": i, "raised": describe(exc)})
            return
        send({"case": i, "stdout": printed})


def _run_source(job: dict, inputs: list, send) -> None:
    (tests,) = inputs
    try:
        namespace = _exec_program(job["program"])
        namespace.pop("check", None)  # only a `check` the tests define is called
        exec(compile(tests, "<tests>", "exec"), namespace)
        if "check" in namespace:
            if job["entry_point"] not in namespace:
                raise NameError(f"the program does not define {job['entry_point']}()")
            namespace["check"](namespace[job["entry_point"]])
    except BaseException as exc:
        send({"case": 0, "raised": describe(exc)})
        return
    send({"case": 0, "verdict": "pass"})


def _compile_or_report(program: str, send):
    try:
        return compile(program, "<solution>", "exec")
    except BaseException as exc:
        send({"case": 0, "raised": describe(exc)})
        return None


def _exec_program(program: str) -> dict:
    # Not "__main__": a demo under `if __name__ == "__main__":` would run and often read stdin.
    namespace = {"__name__": "solution"}
    exec(compile(program, "<solution>", "exec"), namespace)
    return namespace


class _OutputLimit(BaseException):
    """Raised on the write that passes the limit (a BaseException: `except Exception` in the
    program does not swallow it; a bare `except:` may, so the buffer also remembers)."""


class _CappedBuffer(io.BytesIO):
    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.flooded = limit, False

    def write(self, data) -> int:
        if self.flooded or self.tell() + len(data) > self.limit:
            self.flooded = True
            raise _OutputLimit(f"more than {self.limit} bytes on stdout")
        return super().write(data)


def _run_as_script(code, stdin_text: str) -> str:
    """What the program prints with `stdin_text` on stdin, run as `python program.py` would."""
    buffer = _CappedBuffer(STDOUT_BYTES)
    stdout = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    # a real text stream over bytes: programs read sys.stdin.buffer and write sys.stdout.buffer
    stdin = io.TextIOWrapper(io.BytesIO(stdin_text.encode()), encoding="utf-8")
    saved = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = stdin, stdout
    try:
        exec(code, _script_namespace(stdin_text))
    except SystemExit as stop:  # exit() / sys.exit(0) end a script normally
        if stop.code not in (None, 0):
            raise
    finally:
        sys.stdin, sys.stdout = saved
        if not buffer.flooded:
            try:
                stdout.flush()
            except _OutputLimit:
                pass
    if buffer.flooded:
        raise _OutputLimit(f"more than {STDOUT_BYTES} bytes on stdout")
    return buffer.getvalue().decode("utf-8", "replace")


def _script_namespace(stdin_text: str) -> dict:
    # A script may end with exit() and read its input with open(0), the competitive programmer's
    # idiom; evalplus's guard (when it is on) sets exit, quit and open to None, so those come back.
    def open_stdin(file, mode="r", *args, **kwargs):
        if file != 0:
            raise PermissionError("open() is disabled in the sandbox; only open(0), stdin, reads")
        data = io.BytesIO(stdin_text.encode())
        return data if "b" in mode else io.TextIOWrapper(data, encoding="utf-8")

    return {"__name__": "__main__", "exit": sys.exit, "quit": sys.exit, "open": open_stdin}


# ---------------------------------------------------------------- plumbing


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"  # SIGXCPU, SIGSEGV, ...
        except ValueError:  # a real-time signal has no name
            return f"killed by signal {number}"
    return f"exited with code {os.WEXITSTATUS(status)} before finishing"  # e.g. os._exit(0)


def address_space_bytes() -> int:
    """This process's address space (read in the template, where /proc still is): a program's
    memory limit comes on top of it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
