"""Bad input to the runner, through the command line a user types: a process count the rollout
groups cannot be split into, a precision or attention kernel this machine cannot run, a teacher
placement that names no device, a missing device or a domain without a teacher. Each is exit code 2
with one message naming the field or flag and its value, before any model loads and before the run
directory exists. (A LoRA target module the model lacks: tests/test_lora.py.)"""

import importlib.util
import json
import shutil

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from uniopd.commands.cli import main


def _experiment(tiny_experiment, root, student, teacher, **extra) -> dict:
    return tiny_experiment(
        student,
        teacher,
        {"train": ["builtin:math/train"], "eval": ["builtin:math/test"], "limit": 8},
        root / "runs",
        name="bad",
        seed=2,
        rollout={"prompts_per_batch": 4},
        train={"steps": 1},
        tracking={"wandb": "disabled"},
        **extra,
    )


def _write(root, cfg: dict):
    path = root / "bad.yaml"
    path.write_text("# bad.yaml — runner bad-input test\n" + yaml.safe_dump(cfg))
    return path


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fails the test if any model's weights are loaded or worker processes are started."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    def no_launch(*args, **kwargs):
        raise AssertionError("processes were launched")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr("uniopd.engine.loading.load_model", refuse)
    monkeypatch.setattr("uniopd.launch.multiprocess.relaunch", no_launch)


@pytest.fixture(scope="module")
def finished_run(tiny_experiment, tmp_path_factory, make_checkpoint):
    """A 1-step run with `teacher_device: cpu` named explicitly (the student's device), as
    `uniopd run` makes it."""
    root = tmp_path_factory.mktemp("placed")
    s, t = make_checkpoint(11), make_checkpoint(12)
    cfg = _experiment(tiny_experiment, root, s, t, teacher_device="cpu")
    cfg["name"] = "placed"
    assert main(["run", str(_write(root, cfg))]) == 0
    return root / "runs" / "placed"


# --- the process count --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nproc, message",
    [
        (
            3,
            "uniopd: error: rollout.prompts_per_batch = 4 does not divide among 3 processes: each "
            "process takes an equal share of whole groups (use a multiple of 3)",
        ),
        (
            5,
            "uniopd: error: --nproc 5: rollout.prompts_per_batch is 4, so at most 4 processes get "
            "a group each (a group never spans processes)",
        ),
        (0, "uniopd: error: run: --nproc 0: needs at least one process"),
        (-2, "uniopd: error: run: --nproc -2: needs at least one process"),
    ],
    ids=["3-of-4", "5-of-4", "0", "negative"],
)
def test_nproc_the_groups_cannot_be_split_into_exits_2(
    nproc, message, tiny_experiment, make_checkpoint, tmp_path, capsys, no_model_loads
):
    s, t = make_checkpoint(11), make_checkpoint(12)
    exp = _write(tmp_path, _experiment(tiny_experiment, tmp_path, s, t))
    assert main(["run", str(exp), "--nproc", str(nproc)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("uniopd: error:") == 1
    assert not (tmp_path / "runs").exists()  # no run directory either


def test_nproc_that_divides_the_batch_passes_the_plan(tiny_experiment, make_checkpoint, tmp_path):
    from uniopd.config import load_experiment
    from uniopd.setup.plan import make_plan

    s, t = make_checkpoint(11), make_checkpoint(12)
    exp = _write(tmp_path, _experiment(tiny_experiment, tmp_path, s, t))
    for n in (1, 2, 4):
        assert len(make_plan(load_experiment(exp), processes=n).train) == 8


# --- the devices --------------------------------------------------------------------------------

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
no_flash_attn = pytest.mark.skipif(
    importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed"
)

DEVICE_CASES = [
    pytest.param(
        {"precision": "fp16-mixed"},
        "uniopd: error: precision: fp16-mixed needs a CUDA device (device is cpu); use "
        "bf16-mixed or fp32",
        id="fp16-mixed-on-cpu",
    ),
    pytest.param(
        {"attn_implementation": "flash_attention_2"},
        "uniopd: error: attn_implementation: flash_attention_2 needs the flash-attn package, "
        "which is not installed (pip install flash-attn); use sdpa",
        id="flash-attention-2-without-the-package",
        marks=no_flash_attn,
    ),
    pytest.param(
        {"device": "cuda"},
        "uniopd: error: device: cuda was asked for, but torch sees no CUDA device",
        id="cuda-student-without-cuda",
        marks=no_cuda,
    ),
    pytest.param(
        {"teacher_device": "cuda:0"},
        "uniopd: error: teacher_device: cuda:0 asked for, but torch sees 0 CUDA device(s)",
        id="cuda-teacher-without-cuda",
        marks=no_cuda,
    ),
    pytest.param(
        {"teacher_device": {"math": "cuda:1"}},
        "uniopd: error: teacher_device.math: cuda:1 asked for, but torch sees 0 CUDA device(s)",
        id="cuda-teacher-of-one-domain-without-cuda",
        marks=no_cuda,
    ),
    pytest.param(
        {"teacher_device": {"chess": "cpu"}},
        "uniopd: error: teacher_device.chess: no teacher is named for domain 'chess'",
        id="placement-of-a-domain-without-a-teacher",
    ),
    pytest.param(
        {"teacher_device": "banana"},
        "uniopd: error: teacher_device: 'banana' is not a device (cpu, cuda, cuda:1, ...)",
        id="teacher-device-not-a-device",
    ),
    pytest.param(
        {"teacher_device": {"math": "banana"}},
        "uniopd: error: teacher_device.math: 'banana' is not a device (cpu, cuda, cuda:1, ...)",
        id="teacher-device-of-one-domain-not-a-device",
    ),
    pytest.param(  # torch parses it, but a teacher there scores nothing (every row masked)
        {"teacher_device": "meta"},
        "uniopd: error: teacher_device: 'meta' is not a device (cpu, cuda, cuda:1, ...)",
        id="teacher-device-meta",
    ),
]


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("fields, message", DEVICE_CASES)
def test_device_this_machine_cannot_give_exits_2_before_any_model_loads(
    command, fields, message, tiny_experiment, make_checkpoint, tmp_path, capsys, no_model_loads
):
    s, t = make_checkpoint(11), make_checkpoint(12)
    exp = _write(tmp_path, _experiment(tiny_experiment, tmp_path, s, t, **fields))
    assert main([command, str(exp)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.count("uniopd: error:") == 1
    assert "ok " not in captured.out  # validate does not pass the file
    assert not (tmp_path / "runs").exists()


def test_bad_device_is_caught_before_the_process_count_is_acted_on(
    tiny_experiment, make_checkpoint, tmp_path, capsys, no_model_loads
):
    """With a good --nproc, `run` plans (and so checks the devices) before it makes the run
    directory and starts the processes."""
    s, t = make_checkpoint(11), make_checkpoint(12)
    exp = _write(tmp_path, _experiment(tiny_experiment, tmp_path, s, t, teacher_device="banana"))
    assert main(["run", str(exp), "--nproc", "2"]) == 2
    assert "teacher_device: 'banana' is not a device" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# --- resume -------------------------------------------------------------------------------------


def test_resume_with_an_nproc_the_groups_cannot_be_split_into_exits_2(
    finished_run, tmp_path, capsys, no_model_loads
):
    """A run killed in its first step, before any checkpoint, resumed with --nproc 3 while its
    config says rollout.prompts_per_batch: 4."""
    run = tmp_path / "runs" / "placed"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    meta = (run / "meta.json").read_text()
    for nproc, message in [
        (3, "rollout.prompts_per_batch = 4 does not divide among 3 processes"),
        (5, "--nproc 5: rollout.prompts_per_batch is 4, so at most 4 processes"),
        (0, "run: --nproc 0: needs at least one process"),
    ]:
        assert main(["run", "--resume", str(run), "--nproc", str(nproc)]) == 2
        err = capsys.readouterr().err
        assert f"uniopd: error: {message}" in err, err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written
    assert (run / "meta.json").read_text() == meta
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["placed"]  # no new run


def test_resume_of_a_finished_run_has_nothing_to_split(finished_run, capsys, no_model_loads):
    """A finished run has no steps left: `--nproc 3` starts nothing and is no error."""
    assert main(["run", "--resume", str(finished_run), "--nproc", "3"]) == 0
    assert "already finished all 1 steps" in capsys.readouterr().err


# --- a good placement ---------------------------------------------------------------------------


def test_teacher_device_same_as_the_student_trains(finished_run):
    metrics = [json.loads(x) for x in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1]
    assert all(isinstance(m["loss"], float) for m in metrics)
    saved = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert saved["teacher_device"] == "cpu"
    assert (finished_run / "checkpoints" / "latest").read_text().strip() == "step_000001"
