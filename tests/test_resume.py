"""`uniopd run --resume`: a run continued from a checkpoint ends exactly where an uninterrupted one does."""

import json
import shutil

import pytest
import yaml

from uniopd.commands.cli import main

pytestmark = pytest.mark.slow  # kills and resumes real training runs


def _experiment(tiny_experiment, tmp_path, student, teacher, **extra):
    """Each section in `extra` replaces the whole of the base's."""
    cfg = tiny_experiment(
        student,
        {"math": teacher, "code": teacher},
        {
            "train": ["builtin:math/train", "builtin:code/train"],
            "eval": ["builtin:math/test", "builtin:code/test"],
            "limit": 12,
        },
        tmp_path / "runs",
        name="r",
        seed=5,
        rollout={"group_size": 4, "prompts_per_batch": 3, "max_new_tokens": 8},
        train={"steps": 6, "lr": 1e-3, "warmup_steps": 2, "lr_schedule": "cosine"},
        balance={"online": {"enabled": True}},
        calibration={"margin_shift": True},
        eval={"every": 2, "n_samples": 2, "max_prompts_per_domain": 3},
        output={"checkpoint_every": 2, "keep_checkpoints": 5},
    )
    cfg = {**cfg, **extra}
    path = tmp_path / "r.yaml"
    path.write_text("# r.yaml — resume test\n" + yaml.safe_dump(cfg))
    return path


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _crash_after(run, step):
    """What a SIGKILL after `step`'s checkpoint leaves: later checkpoints gone, logs written past it,
    a torn last line."""
    for ckpt in (run / "checkpoints").glob("step_*"):
        if int(ckpt.name.removeprefix("step_")) > step:
            shutil.rmtree(ckpt)
    (run / "checkpoints" / "latest").write_text(f"step_{step:06d}\n")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "loss": 0.')


@pytest.mark.parametrize("crash_step", [2, 4])
def test_resumed_run_matches_the_uninterrupted_one(
    tiny_experiment, tmp_path, make_checkpoint, crash_step
):
    exp = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    assert main(["run", str(exp)]) == 0
    assert main(["run", str(exp)]) == 0  # the same run again: runs/r-2
    whole, crashed = tmp_path / "runs" / "r", tmp_path / "runs" / "r-2"
    _crash_after(crashed, crash_step)
    with pytest.raises(json.JSONDecodeError):  # the torn line; resume drops it and rewinds the logs
        _lines(crashed / "metrics.jsonl")
    assert main(["run", "--resume", str(crashed)]) == 0
    a, b = _lines(whole / "metrics.jsonl"), _lines(crashed / "metrics.jsonl")
    assert [m["step"] for m in b] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b):
        assert x["loss"] == y["loss"] and x["reward"] == y["reward"]
        assert x["order/consistency_before"] == y["order/consistency_before"]
    ea, eb = _lines(whole / "eval.jsonl"), _lines(crashed / "eval.jsonl")
    assert [e["step"] for e in eb] == [0, 2, 4, 6]
    assert [e["math"]["acc"] for e in ea] == [e["math"]["acc"] for e in eb]
    assert [e["code"]["acc"] for e in ea] == [e["code"]["acc"] for e in eb]
    meta = json.loads((crashed / "meta.json").read_text())
    assert meta["resumes"][0]["from_step"] == crash_step


def test_truncated_checkpoint_falls_back_to_the_previous_one(
    tiny_experiment, tmp_path, make_checkpoint, caplog
):
    exp = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    assert main(["run", str(exp)]) == 0
    run = tmp_path / "runs" / "r"
    _crash_after(run, 4)
    weights = run / "checkpoints" / "step_000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(["run", "--resume", str(run)]) == 0
    assert "step_000004 is unusable" in caplog.text
    assert json.loads((run / "meta.json").read_text())["resumes"][0]["from_step"] == 2
    assert [m["step"] for m in _lines(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_resume_bad_input(tiny_experiment, tmp_path, make_checkpoint, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    exp = _experiment(
        tiny_experiment,
        tmp_path,
        make_checkpoint(11),
        make_checkpoint(12),
        output={"root": str(tmp_path / "runs"), "progress": False},
    )
    assert main(["run", str(exp), "train.steps=1"]) == 0
    run = tmp_path / "runs" / "r"
    assert main(["run", "--resume", str(run), "train.lr=1"]) == 2
    assert "keeps the config" in capsys.readouterr().err
    assert main(["run", "--resume", str(run)]) == 0  # finished: nothing to do
    assert "already finished" in capsys.readouterr().err


def test_sigkilled_run_resumes_to_the_same_result(tiny_experiment, tmp_path, make_checkpoint):
    """A real SIGKILL mid-run (a separate process), then `run --resume`: same losses and accuracy
    as the uninterrupted run. Both run as subprocesses with one thread, so their arithmetic is
    identical."""
    import os
    import signal
    import subprocess
    import sys
    import time

    exp = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    cfg = yaml.safe_load(exp.read_text())
    cfg["train"]["steps"] = 10
    exp.write_text("# r.yaml — resume test\n" + yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "uniopd.commands.cli"]
    subprocess.run([*cli, "run", str(exp)], env=env, check=True, capture_output=True)
    victim = subprocess.Popen(
        [*cli, "run", str(exp)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    crashed = tmp_path / "runs" / "r-2"
    deadline = time.time() + 120
    while not (crashed / "checkpoints" / "step_000004").exists():
        assert time.time() < deadline and victim.poll() is None, (
            "the run ended before it could be killed"
        )
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (crashed / "checkpoints" / "step_000010").exists()
    subprocess.run(
        [*cli, "run", "--resume", str(crashed)], env=env, check=True, capture_output=True
    )
    a, b = _lines(tmp_path / "runs" / "r" / "metrics.jsonl"), _lines(crashed / "metrics.jsonl")
    assert [m["step"] for m in b] == list(range(1, 11))
    assert [m["loss"] for m in a] == [m["loss"] for m in b]
    ea, eb = _lines(tmp_path / "runs" / "r" / "eval.jsonl"), _lines(crashed / "eval.jsonl")
    assert [(e["math"]["acc"], e["code"]["acc"]) for e in ea] == [
        (e["math"]["acc"], e["code"]["acc"]) for e in eb
    ]
