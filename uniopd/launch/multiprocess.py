"""`uniopd run --nproc N`: the same command again in N data-parallel processes, started by
accelerate's launcher (torch.distributed's elastic agent underneath), so

    uniopd run experiments/x.yaml --nproc 4
    accelerate launch --multi_gpu --num_processes 4 -m uniopd run experiments/x.yaml

do the same. The agent watches its workers: when one dies, it stops the others (no process
waits forever on a dead peer), and the launcher exits non-zero; `--resume` continues from the
last checkpoint. On a machine without GPUs the processes talk over gloo (tests, CPU runs).

Preemption and storage faults (docs/faults.md): the agent ignores SIGTERM and SIGUSR1, which this
process forwards to the training processes (they stop together after a checkpoint). Each training
process leaves its pid and its exit code in a launch folder; one that stopped for preemption or a
storage fault exits 0 to the agent (any other code makes it print a crash report) and this process
returns the recorded code instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from uniopd.loop.preemption import EXIT_PREEMPTED, SIGNALS
from uniopd.storage.faults import EXIT_STORAGE_FAULT

LAUNCH_FOLDER = "UNIOPD_LAUNCH_FOLDER"  # where the training processes leave pids and exit codes
_RECORDED = (EXIT_STORAGE_FAULT, EXIT_PREEMPTED)  # codes that travel through the folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_command(nproc: int, uniopd_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",  # the multi-process launcher: NCCL with GPUs, gloo without
        "--num_processes",
        str(nproc),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",  # precision is the experiment's `precision`, applied by uniopd itself
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "uniopd",
        *uniopd_args,
    ]


def relaunch(nproc: int, uniopd_args: list[str]) -> int:
    """Run `uniopd <uniopd_args>` in `nproc` processes; the code they recorded (3: storage
    fault, 4: preempted), else their launcher's exit code."""
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cpus = os.cpu_count() or 1
    env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // nproc)))
    # the agent's own SIGTERM handler would stop the workers on a 30 s clock, mid-checkpoint
    env["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGINT,SIGHUP,SIGQUIT"
    with tempfile.TemporaryDirectory(prefix="uniopd-launch-") as folder:
        env[LAUNCH_FOLDER] = folder
        # ignored here while the launcher starts, so ignored there too (exec keeps an ignored
        # signal ignored): the agent neither dies of them nor handles them
        before = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
        launcher = subprocess.Popen(launch_command(nproc, uniopd_args), env=env)
        for s in SIGNALS:
            signal.signal(s, lambda n, _f: _forward(Path(folder), n))
        try:
            code = launcher.wait()
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)
        recorded = [int(f.read_text()) for f in Path(folder).glob("rank*.exit")]
    return next((c for c in _RECORDED if c in recorded), code)


def _forward(folder: Path, signum: int) -> None:
    for pid_file in folder.glob("rank*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signum)
        except (ProcessLookupError, ValueError):  # gone already, or its file half-written
            pass


def _rank_file(suffix: str) -> Path | None:
    folder = os.environ.get(LAUNCH_FOLDER)
    return Path(folder) / f"rank{os.environ.get('RANK', '0')}.{suffix}" if folder else None


def announce() -> None:
    """A training process started by `relaunch`: its pid, for the signals forwarded to it."""
    path = _rank_file("pid")
    if path is not None:
        path.write_text(str(os.getpid()))


def exit_code(code: int) -> int:
    """What a training process exits with: started by `relaunch`, a storage fault or preemption
    is recorded for it and 0 goes to the agent; otherwise `code` itself."""
    path = _rank_file("exit")
    if path is None:
        return code
    path.write_text(str(code))
    return 0 if code in _RECORDED else code
