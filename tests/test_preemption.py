"""Preemption: SIGTERM (or SIGUSR1) makes a run finish the step under way, write a checkpoint and
exit with code 4; `uniopd run --resume` then ends exactly as the uninterrupted run. A second
SIGTERM while that checkpoint is written exits at once, leaving the newest complete checkpoint
as it was. With several processes, every one stops after the same step."""

from __future__ import annotations

import json
import os
import random
import re
import signal

import pytest
from fault_runs import (
    SLOW_CHECKPOINT_CLI,
    assert_same_training,
    experiment,
    metrics_lines,
    no_torn_lines,
    no_traceback,
    reference,
    start,
    uniopd,
    wait_for,
)

from uniopd.loop.preemption import EXIT_PREEMPTED
from uniopd.run_dir import RunDir

pytestmark = pytest.mark.slow  # real runs, signalled and resumed in their own processes


def _stopped_after(stderr: str) -> int:
    said = re.findall(r"^uniopd: SIGTERM: stopped after step (\d+)\. ", stderr, re.M)
    assert len(said) == 1, stderr[-3000:]  # said once, by the first process
    return int(said[0])


@pytest.mark.parametrize("nproc", [1, 2])
def test_sigterm_at_a_random_step_then_resume_ends_as_the_uninterrupted_run(
    tiny_experiment, make_checkpoint, tmp_path_factory, tmp_path, nproc
):
    ref = reference(tiny_experiment, make_checkpoint, tmp_path_factory, nproc)
    exp = experiment(tiny_experiment, tmp_path, make_checkpoint)
    run = tmp_path / "runs" / "r"
    at = random.randint(1, 4)  # the run has 6 steps; the signal comes after step `at` is logged
    print(f"SIGTERM once step {at} is logged ({nproc} process(es))")
    victim = start("run", str(exp), "--nproc", str(nproc))
    wait_for(lambda: metrics_lines(run) >= at, victim, f"step {at}")
    victim.send_signal(signal.SIGTERM)
    _, stderr = victim.communicate(timeout=300)
    assert victim.returncode == EXIT_PREEMPTED, stderr[-3000:]
    no_traceback(stderr)
    step = _stopped_after(stderr)
    assert at <= step < 6
    assert f"checkpoint is {run / 'checkpoints' / f'step_{step:06d}'}" in stderr
    more = " --nproc 2" if nproc == 2 else ""
    assert f"continue with: uniopd run --resume {run}{more}" in stderr
    no_torn_lines(run)

    done = uniopd("run", "--resume", str(run), "--nproc", str(nproc), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_training(ref, run)
    resumes = json.loads((run / "meta.json").read_text())["resumes"]
    assert [r["from_step"] for r in resumes] == [step]


def test_a_second_sigterm_while_the_checkpoint_is_written_exits_at_once(
    tiny_experiment, make_checkpoint, tmp_path
):
    exp = experiment(tiny_experiment, tmp_path, make_checkpoint)
    run = tmp_path / "runs" / "r"
    victim = start("run", str(exp), command=SLOW_CHECKPOINT_CLI)  # each write pauses 3 s
    wait_for(lambda: metrics_lines(run) >= 3, victim, "step 3")  # step 2's checkpoint is written
    victim.send_signal(signal.SIGTERM)  # stops after step 3 or 4, with a checkpoint of it
    writing = [run / "checkpoints" / f".step_{s:06d}.tmp" for s in (3, 4)]
    wait_for(lambda: any(os.path.exists(p) for p in writing), victim, "the checkpoint")
    victim.send_signal(signal.SIGSTOP)  # frozen mid-write, so the next signal lands there
    try:
        assert any(p.exists() for p in writing), "the write ended before the process stopped"
        victim.send_signal(signal.SIGTERM)
    finally:
        victim.send_signal(signal.SIGCONT)
    _, stderr = victim.communicate(timeout=120)
    assert victim.returncode == EXIT_PREEMPTED, stderr[-3000:]
    no_traceback(stderr)
    assert "a second signal while writing the checkpoint: exiting now" in stderr
    assert "stopped after step" not in stderr  # it did not wait to finish
    ckpt, state = RunDir(run).resumable_checkpoint()  # the newest complete one loads whole
    assert state["step"] in (2, 3, 4) and ckpt.name == f"step_{state['step']:06d}"
    assert not [p for p in writing if p.exists()], "resume removes the unfinished checkpoint"
    no_torn_lines(run)


@pytest.mark.sweep
def test_a_preempted_sweep_trial_is_requeued_with_the_same_parameters(
    tiny_experiment, make_checkpoint, tmp_path
):
    from test_sweep import _base

    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    spec = {
        "name": "p",
        "base": "b.yaml",
        "output": str(tmp_path / "out"),
        "space": {"calibration.delta": {"type": "float", "low": 0.0, "high": 1.0}},
        "overrides": ["calibration.margin_shift=true", "train.steps=6", "eval.every=3"],
        "sampler": {"kind": "random", "seed": 3},
        "trials": 2,
        "pruner": {"kind": "none"},
    }
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(spec))
    sweep = ["sweep", str(path), "--workers", "1"]
    trials = tmp_path / "out" / "p" / "trials"
    victim_dir = trials / "trial-0000-s0"
    sweeping = start(*sweep, cwd=tmp_path, start_new_session=True)
    wait_for(lambda: metrics_lines(victim_dir) >= 1, sweeping, "the first trial's first step")
    sweeping.send_signal(signal.SIGTERM)  # to `uniopd sweep` alone: it reaches the worker
    _, stderr = sweeping.communicate(timeout=300)
    assert sweeping.returncode == 0, stderr[-3000:]  # the sweep wrote its summary
    no_traceback(stderr)
    assert "worker exit codes [4]" in stderr
    assert "re-queued with the same parameters" in (victim_dir / "preempted.txt").read_text()
    summary = json.loads((tmp_path / "out" / "p" / "summary.json").read_text())
    assert summary["trials"]["fail"] == 1 and summary["trials"]["waiting"] == 1

    again = uniopd(*sweep, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "p" / "summary.json").read_text())
    assert summary["trials"]["complete"] == 2  # the re-queued trial and the second one
    retry = next(int(k) for k, v in summary["retried"].items() if v == 0)
    retried_dir = trials / f"trial-{retry:04d}-s0"
    params = [
        json.loads((d / "trial.json").read_text())["params"] for d in (victim_dir, retried_dir)
    ]
    assert params[0] == params[1]
    assert (retried_dir / "checkpoints" / "latest").exists()
