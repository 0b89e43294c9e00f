"""`uniopd run --nproc N`: the same command again in N data-parallel processes, started by
accelerate's launcher (torch.distributed's elastic agent underneath), so

    uniopd run experiments/x.yaml --nproc 4
    accelerate launch --multi_gpu --num_processes 4 -m uniopd run experiments/x.yaml

do the same. The agent watches its workers: when one dies, it stops the others (no process
waits forever on a dead peer), and the launcher exits non-zero; `--resume` continues from the
last checkpoint. On a machine without GPUs the processes talk over gloo (tests, CPU runs).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys


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
    """Run `uniopd <uniopd_args>` in `nproc` processes; their launcher's exit code."""
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cpus = os.cpu_count() or 1
    env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // nproc)))
    return subprocess.run(launch_command(nproc, uniopd_args), env=env).returncode
