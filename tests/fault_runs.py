"""Helpers of the storage-fault and preemption tests: the resume test's tiny run, started as a
real `uniopd` process (one thread, so two runs compute the same numbers), and the comparison of
two run directories' training records."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
CLI = [sys.executable, "-m", "uniopd.commands.cli"]
# the same command with every checkpoint write pausing 3 s mid-folder: a signal can land there
SLOW_CHECKPOINT_CLI = [sys.executable, str(Path(__file__).with_name("slow_checkpoint.py")), "3"]
# what differs between two runs of the same numbers: wall-clock and throughput
_TIMING = ("time/", "tokens_per_s/", "seconds")


def experiment(tiny_experiment, tmp_path: Path, make_checkpoint, name="r", **extra) -> Path:
    """test_resume.py's run (online balancing, margin calibration, evaluations, a checkpoint
    every 2 steps, all kept) with 4 prompts a step, which 2 processes share; `extra` replaces
    whole sections."""
    cfg = tiny_experiment(
        make_checkpoint(11),
        {"math": make_checkpoint(12), "code": make_checkpoint(12)},
        {
            "train": ["builtin:math/train", "builtin:code/train"],
            "eval": ["builtin:math/test", "builtin:code/test"],
            "limit": 12,
        },
        tmp_path / "runs",
        name=name,
        seed=5,
        rollout={"group_size": 4, "prompts_per_batch": 4, "max_new_tokens": 8},
        train={"steps": 6, "lr": 1e-3, "warmup_steps": 2, "lr_schedule": "cosine"},
        balance={"online": {"enabled": True}},
        calibration={"margin_shift": True},
        eval={"every": 2, "n_samples": 2, "max_prompts_per_domain": 3},
        output={"checkpoint_every": 2, "keep_checkpoints": 5},
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"# {name}.yaml - fault test\n" + yaml.safe_dump({**cfg, **extra}))
    return path


def file_size_limit(limit: int | None):
    """A preexec_fn: writes that would grow any file past `limit` bytes fail with EFBIG (a full
    disk below the Python layer, for this process only)."""

    def apply() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def uniopd(*args: str, limit: int | None = None, timeout: float = 300, cwd=None):
    """`uniopd ARGS` in its own process; its CompletedProcess (text)."""
    return subprocess.run(
        [*CLI, *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        preexec_fn=file_size_limit(limit),
    )


def start(*args: str, command=CLI, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [*command, *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: {proc.stderr.read()[-3000:]}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def metrics_lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _numbers(record: dict) -> dict:
    out = {}
    for k, v in record.items():
        if k.startswith(_TIMING):
            continue
        out[k] = _numbers(v) if isinstance(v, dict) else v
    return out


def assert_same_training(reference: Path, run: Path) -> None:
    """Every metrics and evaluation line of `run` equals the reference's, timings aside."""
    for name in ("metrics.jsonl", "eval.jsonl"):
        a, b = lines(reference / name), lines(run / name)
        assert [r["step"] for r in b] == [r["step"] for r in a], name
        for x, y in zip(a, b):
            assert _numbers(x) == _numbers(y), (name, x["step"])


def no_torn_lines(run: Path) -> None:
    for path in run.rglob("*.jsonl"):
        text = path.read_text()
        assert not text or text.endswith("\n"), path
        lines(path)  # every line parses


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]


_REFERENCES: dict[str, Path] = {}


def reference(tiny_experiment, make_checkpoint, tmp_path_factory, nproc: int = 1) -> Path:
    """The uninterrupted run of `experiment` (made once per session and process count)."""
    key = f"nproc{nproc}"
    if key not in _REFERENCES:
        folder = tmp_path_factory.mktemp(f"reference-{key}")
        exp = experiment(tiny_experiment, folder, make_checkpoint)
        done = uniopd("run", str(exp), "--nproc", str(nproc), timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        _REFERENCES[key] = folder / "runs" / "r"
    return _REFERENCES[key]
