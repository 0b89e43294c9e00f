"""`teacher_device` with several processes: each process puts its teachers on its own device (a
rule `cuda:{local_rank+N}` or a list, one entry per local rank), and the plan checks every
process's device against the GPUs torch sees, for the run's --nproc, before any model loads (exit
code 2, naming the field, the process and the device). The number of visible GPUs is patched: it
is outside our control on a machine without any."""

from __future__ import annotations

import pytest
import torch
import yaml

from uniopd.commands.cli import main
from uniopd.setup.parts import teacher_device


@pytest.mark.parametrize(
    "setting, domain, local_rank, expected",
    [
        ("cuda:{local_rank+4}", "math", 0, "cuda:4"),
        ("cuda:{local_rank+4}", "math", 3, "cuda:7"),
        ("cuda:{local_rank}", "code", 2, "cuda:2"),
        (["cuda:4", "cuda:6"], "math", 1, "cuda:6"),
        ({"math": ["cuda:2", "cuda:3"], "code": "cuda:{local_rank + 4}"}, "math", 1, "cuda:3"),
        ({"math": ["cuda:2", "cuda:3"], "code": "cuda:{local_rank + 4}"}, "code", 1, "cuda:5"),
        ("cpu", "math", 3, "cpu"),
        ({"code": "cpu"}, "math", 1, "cuda:1"),  # unplaced: the student's device
        (None, "math", 1, "cuda:1"),
    ],
)
def test_each_process_resolves_its_own_teacher_device(setting, domain, local_rank, expected):
    student = torch.device("cuda", local_rank)
    assert teacher_device(setting, domain, student, local_rank) == torch.device(expected)


@pytest.fixture
def gpus(monkeypatch):
    """gpus(n): torch sees n CUDA devices (for the planner's checks; nothing runs on them)."""

    def see(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)

    return see


def _experiment(tiny_experiment, make_checkpoint, tmp_path, placement):
    cfg = tiny_experiment(
        make_checkpoint(11),
        {"math": make_checkpoint(12), "code": make_checkpoint(12)},
        {"train": ["builtin:math/train", "builtin:code/train"], "limit": 8},
        tmp_path / "runs",
        rollout={"prompts_per_batch": 8},
        tracking={"wandb": "disabled"},
        teacher_device=placement,
    )
    path = tmp_path / "exp.yaml"
    path.write_text("# teacher placement test\n" + yaml.safe_dump(cfg))
    return path


REFUSED = [
    pytest.param(
        "cuda:{local_rank+4}",
        4,
        6,
        "teacher_device: cuda:{local_rank+4} gives process 2 cuda:6, but torch sees 6 CUDA "
        "device(s)",
        id="rule-past-the-visible-gpus",
    ),
    pytest.param(
        {"code": ["cuda:4", "cuda:5", "cuda:8", "cuda:7"]},
        4,
        8,
        "teacher_device.code[2]: cuda:8 asked for, but torch sees 8 CUDA device(s)",
        id="list-entry-not-visible",
    ),
    pytest.param(
        ["cuda:2", "cuda:3"],
        4,
        8,
        "teacher_device: lists 2 device(s), one per process, but the run has 4 processes",
        id="list-shorter-than-the-processes",
    ),
    pytest.param(
        "cuda:1",
        2,
        8,
        "teacher_device: cuda:1 would hold the teachers of all 2 processes (each loads its own "
        "copy); give each process its own GPU, with a rule (cuda:{local_rank+2}",
        id="one-gpu-for-every-process",
    ),
    pytest.param(
        {"math": "cuda"},
        2,
        8,
        "teacher_device.math: cuda would hold the teachers of all 2 processes",
        id="the-current-gpu-for-every-process",
    ),
    pytest.param(
        "cuda:{rank}",
        2,
        8,
        "teacher_device: 'cuda:{rank}' is not a device (cpu, cuda, cuda:1, ...)",
        id="unknown-rule",
    ),
]


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("placement, nproc, visible, message", REFUSED)
def test_a_placement_the_processes_cannot_have_exits_2_before_any_model_loads(
    command,
    placement,
    nproc,
    visible,
    message,
    gpus,
    tiny_experiment,
    make_checkpoint,
    tmp_path,
    capsys,
    no_model_loads,
):
    gpus(visible)
    exp = _experiment(tiny_experiment, make_checkpoint, tmp_path, placement)
    assert main([command, str(exp), "--nproc", str(nproc)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("uniopd: error:") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "placement, nproc",
    [
        ("cuda:{local_rank+4}", 4),  # 8 GPUs: students on 0-3, teachers on 4-7
        ({"math": ["cuda:4", "cuda:5"], "code": ["cuda:6", "cuda:7"]}, 2),
        (["cuda:7", "cuda:7"], 2),  # one GPU shared on purpose
        ("cpu", 4),
        ("cuda:1", 1),
    ],
)
def test_a_placement_every_process_can_have_validates(
    placement, nproc, gpus, tiny_experiment, make_checkpoint, tmp_path, capsys, no_model_loads
):
    gpus(8)
    exp = _experiment(tiny_experiment, make_checkpoint, tmp_path, placement)
    assert main(["validate", "--no-models", str(exp), "--nproc", str(nproc)]) == 0, (
        capsys.readouterr().err
    )
