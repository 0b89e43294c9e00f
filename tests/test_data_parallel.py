"""Data parallelism with real processes (gloo on CPU): one step in 2 processes of B/2 prompts each
is the one-process step on B prompts; a 2-process run resumes exactly; a dead process takes the
others down."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from uniopd.launch.multiprocess import launch_command

pytestmark = pytest.mark.slow  # starts real process groups

ONE_STEP = Path(__file__).parent / "dp" / "one_step.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _one_step(nproc, student, teacher, method, out):
    args = [str(ONE_STEP), str(student), str(teacher), method, str(out)]
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:  # accelerate's launcher, as `uniopd run --nproc` uses it, on a script
        cmd = launch_command(nproc, [])[:-2] + args
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("method", ["opd", "uniopd", "uniopd-fsdp"])
def test_two_processes_make_the_one_process_step(tmp_path, make_checkpoint, method):
    """-fsdp: the student's weights, gradients and Adam state sharded over the 2 processes."""
    student, teacher = make_checkpoint(11), make_checkpoint(12)
    start = {k: v.clone() for k, v in _state(student).items()}
    one = _one_step(1, student, teacher, method.removesuffix("-fsdp"), tmp_path / "one.pt")
    two = _one_step(2, student, teacher, method, tmp_path / "two.pt")
    # the same statistics, from the whole batch: loss, kept rollouts, calibration
    assert two["metrics"] == pytest.approx(one["metrics"], rel=1e-5, abs=1e-7)
    if method.startswith("uniopd"):
        assert one["metrics"]["kept"] < 16 and one["metrics"]["calibration/mixed_units"] > 0
    moved = _norm({k: one["weights"][k] - start[k] for k in start})
    off = _norm({k: two["weights"][k] - one["weights"][k] for k in start})
    print(f"{method}: |step| {moved:.3g}, |2 processes - 1 process| {off:.3g} ({off / moved:.2g})")
    assert moved > 1e-3  # the step did move the weights
    # float32 sums in another order, which Adam's g / (|g| + eps) magnifies on near-zero
    # gradients: measured 5e-6 (OPD) and 2e-6 (Uni-OPD) of the step
    assert off <= 1e-4 * moved, (off, moved)


def _norm(tensors):
    return float(sum(float((t.double() ** 2).sum()) for t in tensors.values()) ** 0.5)


def _state(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def _experiment(tiny_experiment, tmp_path, student, teacher):
    cfg = tiny_experiment(
        student,
        {"math": teacher, "code": teacher},
        {
            "train": ["builtin:math/train", "builtin:code/train"],
            "eval": ["builtin:math/test"],
            "limit": 12,
        },
        tmp_path / "runs",
        name="dp",
        seed=3,
        rollout={"group_size": 4, "prompts_per_batch": 4, "max_new_tokens": 8},
        train={"steps": 6, "lr": 1e-3, "warmup_steps": 1},
        balance={"online": {"enabled": True, "scope": "global"}},
        calibration={"margin_shift": True, "scope": "global"},
        eval={"every": 3, "n_samples": 2, "max_prompts_per_domain": 3},
        output={"checkpoint_every": 2, "keep_checkpoints": 5},
    )
    path = tmp_path / "dp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _workers(launcher_pid):
    """The launcher's training processes (grandchildren through the elastic agent)."""
    found, frontier = [], [launcher_pid]
    while frontier:
        pid = frontier.pop()
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            cmdline = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ")
            launcher = b"accelerate.commands.launch" in cmdline
            if not launcher and (b"--into" in cmdline or b"--resume" in cmdline):
                found.append(kid)
            frontier.append(kid)
    return found


def test_two_process_run_survives_a_dead_worker_and_resumes_exactly(
    tiny_experiment, tmp_path, make_checkpoint
):
    exp = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    cli = [sys.executable, "-m", "uniopd.commands.cli", "run", str(exp), "--nproc", "2"]
    whole = subprocess.run(cli, env=ENV, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    ref = tmp_path / "runs" / "dp"
    meta = json.loads((ref / "meta.json").read_text())
    assert meta["processes"] == 2

    victim = subprocess.Popen(cli, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    crashed = tmp_path / "runs" / "dp-2"
    deadline = time.time() + 300
    while not (crashed / "checkpoints" / "step_000004").exists():
        assert time.time() < deadline and victim.poll() is None, "the run ended before the kill"
        time.sleep(0.05)
    workers = _workers(victim.pid)
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGKILL)  # one rank dies; the other must not hang
    killed_at = time.time()
    code = victim.wait(timeout=120)
    print(f"launcher exited {code} {time.time() - killed_at:.1f} s after the kill")
    assert code != 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in _status(pid)
    assert not (crashed / "checkpoints" / "step_000006").exists()

    resume = [
        sys.executable,
        "-m",
        "uniopd.commands.cli",
        "run",
        "--resume",
        str(crashed),
        "--nproc",
        "2",
    ]
    done = subprocess.run(resume, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _lines(ref / "metrics.jsonl"), _lines(crashed / "metrics.jsonl")
    assert [m["step"] for m in b] == list(range(1, 7))
    assert [m["loss"] for m in a] == [m["loss"] for m in b]
    assert [m["balance/kept"] for m in a] == [m["balance/kept"] for m in b]
    wa = _state(ref / "checkpoints" / "step_000006")
    wb = _state(crashed / "checkpoints" / "step_000006")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _status(pid):
    try:
        return Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return b"zombie"


def test_sharded_student_run_saves_plain_hf_checkpoints_and_resumes(
    tiny_experiment, tmp_path, make_checkpoint
):
    """train.fsdp: the student sharded over 2 processes; its checkpoints load as plain HF models,
    and a run resumed from one ends where the uninterrupted run did."""
    import shutil

    from transformers import AutoModelForCausalLM

    exp = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    cfg = yaml.safe_load(exp.read_text())
    cfg["train"] = {**cfg["train"], "steps": 4, "fsdp": True}
    cfg["eval"]["every"] = 2
    exp.write_text(yaml.safe_dump(cfg))
    cli = [sys.executable, "-m", "uniopd.commands.cli", "run", str(exp), "--nproc", "2"]
    whole = subprocess.run(cli, env=ENV, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    ref = tmp_path / "runs" / "dp"
    final = ref / "checkpoints" / "step_000004"
    config = json.loads((final / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]  # not the sharded class's name
    model = AutoModelForCausalLM.from_pretrained(final)
    assert (
        sum(p.numel() for p in model.parameters())
        == json.loads((ref / "meta.json").read_text())["student_params"]
    )

    crashed = tmp_path / "runs" / "crashed"
    shutil.copytree(ref, crashed)
    shutil.rmtree(crashed / "checkpoints" / "step_000004")
    (crashed / "checkpoints" / "latest").write_text("step_000002\n")
    resume = [
        sys.executable,
        "-m",
        "uniopd.commands.cli",
        "run",
        "--resume",
        str(crashed),
        "--nproc",
        "2",
    ]
    done = subprocess.run(resume, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _lines(ref / "metrics.jsonl"), _lines(crashed / "metrics.jsonl")
    assert [m["step"] for m in b] == [1, 2, 3, 4]
    assert [m["loss"] for m in a] == pytest.approx([m["loss"] for m in b], rel=1e-6)
    wa, wb = _state(final), _state(crashed / "checkpoints" / "step_000004")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_accelerate_launch_of_uniopd_run_makes_one_run_directory(
    tiny_experiment, tmp_path, make_checkpoint
):
    """`accelerate launch --num_processes 2 -m uniopd run FILE`, without --nproc: the first process
    makes the run directory and the other trains into the same one."""
    exp = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    cfg = yaml.safe_load(exp.read_text())
    cfg["train"]["steps"] = 2
    cfg["output"]["checkpoint_every"] = 0
    exp.write_text(yaml.safe_dump(cfg))
    done = subprocess.run(
        launch_command(2, ["run", str(exp)]), env=ENV, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["dp"]
    assert json.loads((tmp_path / "runs" / "dp" / "meta.json").read_text())["processes"] == 2
    assert [m["step"] for m in _lines(tmp_path / "runs" / "dp" / "metrics.jsonl")] == [1, 2]
