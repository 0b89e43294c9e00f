"""The warm sandbox: started once, it grades every job the caller sends it, a few at a time.

    [bwrap ...] python -I -S zygote.py '{"namespaces": true, "max_parallel": 4,
                                          "limits": {...}, "self_test_limits": {...}}'

Standard library only; it runs outside the package, inside bubblewrap when the machine allows it
(uniopd/verifiers/isolation.py). Protocol, one JSON document a line:

    stdin   {"id": k, "job": {...}}            (harness.py lists a job's fields; the limits, the
                                               same for every job, come once, in the config)
    stdout  {"hello": true} or {"hello": false, "problem": text}, once, after a self-test job;
            then {"id": k, "report": text} per job, in the order they finish (the report as the
            relay wrote it: the caller parses it, so a report too deep to parse costs that job)

It exits when stdin ends and every job has reported.

Three kinds of process, and why:

    main      this process: reads jobs, keeps the queue and the deadlines, writes reports
    template  forked by main before a single job is read, so its memory never holds a program,
              an input or a report; it only forks relays, handing each its two pipes. Under
              namespaces it first forbids sockets for good (no_sockets.py) and moves into an
              empty network namespace and a mount namespace of its own (namespaces.py)
    relay     one per job, forked by the template (harness.run_job); under namespaces cloned
              into fresh ones of its own, as their PID 1; the program's process below it

Forking the template costs well under a millisecond, where a fresh interpreter per job cost 50 ms
of CPU. What a fresh interpreter guaranteed stays true: every program starts from the template's
pristine state (the same modules, nothing of any other job's), in its own /tmp, /dev/shm, PID,
IPC, UTS and mount namespaces (namespaces.py), so nothing one program leaves anywhere is visible to
any other. The network namespace is the one the jobs share, and no job can make a socket to reach
it: a fresh one cost an eighth of a job's CPU (no_sockets.py says why sharing it is safe).
"""

from __future__ import annotations

import gc
import json
import os
import select
import socket
import struct
import sys
import time
from collections import deque

# appended, not first: our math.py and code.py must not shadow the standard library
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (by path: this runs outside the package)
import namespaces  # noqa: E402
import no_sockets  # noqa: E402
import processes  # noqa: E402
from plumbing import to_devnull, write_all  # noqa: E402
from values import encode  # noqa: E402

# Seconds a relay may overrun its job's wall time (its own start, the kill and the report) before
# the zygote kills it: what only a program that stopped its relay could cause, so a timeout.
RELAY_GRACE_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36
SELF_TEST = {
    "mode": "call",
    "program": "def f(x):\n    return x + 1\n",
    "entry_point": "f",
    "inputs": [encode([1])],
}


def main() -> None:
    config = json.loads(sys.argv[1])
    out = os.dup(1)
    to_devnull(1)  # a stray print must not corrupt the reports
    ours, theirs = socket.socketpair()
    if os.fork() == 0:
        ours.close()
        processes.exit_after(_template, theirs, config)
    theirs.close()
    zygote = Zygote(ours, config["max_parallel"], config["limits"]["wall_s"], out)
    zygote.hello({**SELF_TEST, **config["self_test_limits"]})
    zygote.serve()


class Zygote:
    def __init__(self, template: socket.socket, max_parallel: int, wall_s: float, out: int):
        self.template, self.max_parallel, self.out = template, max_parallel, out
        self.wall_s = wall_s  # every job's but the self-test's, which brings its own
        self.queue: deque = deque()
        self.running: dict[int, list] = {}  # report fd -> [id, relay pid, deadline, bytes]
        self.unstarted: list[dict] = []  # reports of jobs the template could not fork

    def hello(self, job: dict) -> None:
        """Grade a job that must pass: proof that relays start and contain, before any real job."""
        self.queue.append({"id": "hello", "job": job})
        self._start_jobs()
        while self.running or self.unstarted:
            for message in self._step():
                report = json.loads(message["report"])
                ok = report["status"] == "ran" and report["results"] == [["out", encode(2)]]
                said = {"hello": True} if ok else {"hello": False, "problem": report["detail"]}
                self._send(said)

    def serve(self) -> None:
        buffer, open_input = b"", True
        while open_input or self.queue or self.running or self.unstarted:
            ready = self._wait(open_input)
            if open_input and 0 in ready:
                chunk = os.read(0, 1 << 20)
                open_input = bool(chunk)
                *lines, buffer = (buffer + chunk).split(b"\n")
                self.queue.extend(json.loads(line) for line in lines if line)
            for message in self._step(ready):
                self._send(message)

    def _wait(self, open_input: bool) -> list[int]:
        self._start_jobs()
        fds = list(self.running) + ([0] if open_input else [])
        deadlines = [entry[2] for entry in self.running.values()]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        if self.unstarted:
            wait = 0.0  # their reports are ready now
        return select.select(fds, [], [], wait)[0]

    def _start_jobs(self) -> None:
        while self.queue and len(self.running) < self.max_parallel:
            message = self.queue.popleft()
            job_r, job_w = os.pipe()
            report_r, report_w = os.pipe()
            socket.send_fds(self.template, [b"j"], [job_r, report_w])
            os.close(job_r)
            os.close(report_w)
            (pid,) = struct.unpack("<q", _recv_exact(self.template, 8))
            if pid < 0:  # the template could not fork it (-errno): that job alone is lost
                os.close(job_w)
                os.close(report_r)
                why = f"could not start: the relay's fork failed: {os.strerror(-pid)}"
                report = {"status": "error", "results": [], "detail": why}
                self.unstarted.append({"id": message["id"], "report": json.dumps(report)})
                continue
            try:
                write_all(job_w, json.dumps(message["job"]).encode())
            except BrokenPipeError:
                pass  # the relay died at start; its empty report says so
            os.close(job_w)
            wall_s = message["job"].get("wall_s", self.wall_s)
            deadline = time.monotonic() + wall_s + RELAY_GRACE_S
            self.running[report_r] = [message["id"], pid, deadline, b""]

    def _step(self, ready: list[int] | None = None) -> list[dict]:
        """Read what the ready relays wrote; the reports of those that ended or ran out of time."""
        if ready is None:
            ready = self._wait(False)
        finished, self.unstarted = self.unstarted, []
        for fd in [fd for fd in ready if fd in self.running]:
            chunk = os.read(fd, 1 << 16)
            self.running[fd][3] += chunk
            # one line is the whole report: the relay's exit and its namespaces' teardown
            # overlap the next job instead of holding this one's slot
            if chunk and not chunk.endswith(b"\n"):
                continue
            job_id, _, _, data = self.running.pop(fd)
            os.close(fd)
            finished.append({"id": job_id, "report": _as_report(data)})
        now = time.monotonic()
        for fd in [fd for fd, entry in self.running.items() if entry[2] < now]:
            job_id, pid, _, _ = self.running.pop(fd)
            os.close(fd)
            processes.killpg(pid)  # the relay; its job's PID 1 dies with it (PDEATHSIG)
            report = {"status": "timeout", "results": [], "detail": "the relay never reported"}
            finished.append({"id": job_id, "report": json.dumps(report)})
        return finished

    def _send(self, message: dict) -> None:
        write_all(self.out, json.dumps(message).encode() + b"\n")


def _as_report(data: bytes) -> str:
    """The relay's report, as text the caller parses (and judges unreadable if it is)."""
    if not data:  # the relay died without a word: only the program can have stopped it
        return json.dumps(
            {"status": "fail", "results": [], "detail": "the relay was stopped before it reported"}
        )
    return data.decode("utf-8", "replace")


def _template(sock: socket.socket, config: dict) -> None:
    """Fork one relay per request (under namespaces: clone it into fresh ones, counting the
    processes it may add to first); reap them, and kill what a killed relay left behind (we are a
    child subreaper, so its orphans come here)."""
    import ctypes

    to_devnull(0)  # the job stream is main's alone
    processes.close_fds_except(2, sock.fileno())
    fresh_namespaces = config["namespaces"]
    setting = {"namespaces": fresh_namespaces, "limits": config["limits"], "bounding": []}
    shared_network, proc = False, -1
    if fresh_namespaces:
        setting["bounding"] = namespaces.bounding_set()
        # no job can make a socket, so they can share one empty network namespace, ours; where
        # no filter is known for the machine, each job's clone makes a network namespace of its own
        shared_network = no_sockets.install()
        setting["address_space"] = harness.address_space_bytes()  # before /proc is sealed
        proc = namespaces.enter_template_namespaces(network=shared_network)
    else:
        harness.preload_python_guard(config["limits"]["site_paths"])
        setting["address_space"] = harness.address_space_bytes()
    # the sandbox's environment (isolation.CLEAN_ENV) emptied once here, not in every program:
    # harness._prepare's own clear then finds nothing to do
    os.environ.clear()
    # everything alive now goes to the permanent generation: a collection in a relay or a program
    # never walks (and so never copies) the template's pages
    gc.freeze()

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    relays: set[int] = set()
    while True:
        if select.select([sock], [], [], 0.5)[0]:
            message, fds, _, _ = socket.recv_fds(sock, 1, 2)
            if not message:
                return  # main is gone; the relays still running finish on their own
            try:
                if fresh_namespaces:
                    setting["processes_before"] = namespaces.processes_now(proc)
                    pid = namespaces.clone_fresh(network=not shared_network)
                else:
                    pid = os.fork()
            except OSError as exc:  # out of processes or namespaces for now: this job is lost
                pid = -(exc.errno or 1)
            if pid == 0:
                sock.close()
                processes.exit_after(harness.run_job, fds[0], fds[1], setting)
            for fd in fds:
                os.close(fd)
            if pid > 0:
                relays.add(pid)
            sock.sendall(struct.pack("<q", pid))
        _reap(relays, contained=fresh_namespaces)


def _reap(relays: set[int], contained: bool) -> None:
    """Collect ended relays without waiting. Under namespaces (`contained`) a relay is its job's
    PID 1 and takes every process of the job along, so nothing more is to be done. Without them,
    what a relay left (re-parented to us, a subreaper) is killed each time one ends."""
    ended = stray = False
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        ended, stray = True, stray or pid not in relays
        relays.discard(pid)
    if stray or (ended and not contained):
        processes.kill_all_descendants(spare=frozenset(relays))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the template exited")
        data += chunk
    return data


if __name__ == "__main__":
    main()
