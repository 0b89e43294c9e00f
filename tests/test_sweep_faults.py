"""Sweep fault tolerance with real processes: SIGKILL a worker mid-trial, or the whole sweep."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_sweep import _base

pytestmark = pytest.mark.sweep  # kills and resumes real sweep workers


def _spec(tmp_path, trials=4):
    spec = {
        "name": "f",
        "base": "b.yaml",
        "output": str(tmp_path / "out"),
        "space": {"calibration.delta": {"type": "float", "low": 0.0, "high": 1.0}},
        "overrides": ["calibration.margin_shift=true", "train.steps=8", "eval.every=2"],
        "sampler": {"kind": "random", "seed": 3},
        "trials": trials,
        "pruner": {"kind": "none"},
        "heartbeat": {"interval": 1, "grace": 3, "max_retry": 2},
    }
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _start(path, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "uniopd.commands.cli", "sweep", str(path), "--workers", "2"],
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _running_trial(trials: Path):
    """(trial dir, worker pid) of a trial that has logged a step but not finished."""
    for d in sorted(trials.glob("trial-*")) if trials.exists() else []:
        if (
            (d / "metrics.jsonl").exists()
            and (d / "metrics.jsonl").read_text().strip()
            and not (d / "checkpoints" / "latest").exists()
        ):
            return d, json.loads((d / "trial.json").read_text())["worker"]["pid"]
    return None, None


def _wait(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise TimeoutError


def test_killed_worker_trial_is_retried_and_counted_once(
    tiny_experiment, tmp_path, make_checkpoint
):
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    path = _spec(tmp_path)
    main = _start(path, tmp_path)
    trials = tmp_path / "out" / "f" / "trials"
    victim_dir, pid = _wait(lambda: _running_trial(trials)[1] and _running_trial(trials), 120)
    os.kill(pid, signal.SIGKILL)
    main.wait(timeout=300)
    summary = json.loads((tmp_path / "out" / "f" / "summary.json").read_text())
    # every trial finished (two workers racing for the last slot may finish one more), none twice
    assert 4 <= summary["trials"]["complete"] <= 5
    dead = json.loads((victim_dir / "trial.json").read_text())["trial"]
    assert dead in summary["retried"].values()  # the killed trial came back as a retry
    retry = next(int(k) for k, v in summary["retried"].items() if v == dead)
    retried_dir = trials / f"trial-{retry:04d}-s0"
    assert (
        json.loads((retried_dir / "trial.json").read_text())["params"]
        == json.loads((victim_dir / "trial.json").read_text())["params"]
    )
    assert (retried_dir / "checkpoints" / "latest").exists()


def test_killed_sweep_resumes_with_the_same_command(tiny_experiment, tmp_path, make_checkpoint):
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    path = _spec(tmp_path)
    main = _start(path, tmp_path)
    trials = tmp_path / "out" / "f" / "trials"
    _wait(
        lambda: (
            any((d / "checkpoints" / "latest").exists() for d in trials.glob("trial-*"))
            if trials.exists()
            else False
        ),
        120,
    )
    os.killpg(main.pid, signal.SIGKILL)  # the whole sweep, workers included
    main.wait(timeout=30)
    again = _start(path, tmp_path)
    assert again.wait(timeout=300) == 0
    summary = json.loads((tmp_path / "out" / "f" / "summary.json").read_text())
    assert 4 <= summary["trials"]["complete"] <= 5
