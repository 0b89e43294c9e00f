"""`uniopd group`: several files x several seeds, all checked before any run, finished runs skipped."""

import json

import yaml

from uniopd.commands.cli import main


def _write(tiny_experiment, folder, name, student, teacher, runs, **extra):
    cfg = tiny_experiment(
        student,
        {"math": teacher, "code": teacher},
        {"train": ["builtin:math/train"], "eval": ["builtin:math/test"], "limit": 8},
        runs,
        name=name,
        train={"steps": 1},
        **extra,
    )
    path = folder / f"{name}.yaml"
    path.write_text(f"# {name}.yaml — test\n" + yaml.safe_dump(cfg))
    return path


def test_group_runs_every_file_and_seed_then_skips_finished_ones(
    tiny_experiment, tmp_path, make_checkpoint, capsys
):
    folder, runs = tmp_path / "study", tmp_path / "runs"
    folder.mkdir()
    s, t = make_checkpoint(11), make_checkpoint(12)
    _write(tiny_experiment, folder, "a", s, t, runs)
    _write(tiny_experiment, folder, "b", s, t, runs, calibration={"margin_shift": True})
    (folder / "_partial.yaml").write_text("# a partial base, not a run\nseed: 3\n")
    assert main(["group", str(folder), "--seeds", "0", "1"]) == 0
    made = sorted(p.name for p in runs.iterdir())
    assert made == ["a-s0", "a-s1", "b-s0", "b-s1"]
    assert yaml.safe_load((runs / "b-s1" / "config.yaml").read_text())["seed"] == 1
    capsys.readouterr()
    assert main(["group", str(folder), "--seeds", "0", "1"]) == 0
    assert capsys.readouterr().err.count("already complete, skipped") == 4
    assert sorted(p.name for p in runs.iterdir()) == made


def test_a_run_finished_under_a_second_name_counts_as_complete(tmp_path):
    """An attempt that failed at start leaves runs/a-s0; the retry finished as runs/a-s0-2. A
    third pass must skip it, not start runs/a-s0-3."""
    from uniopd.commands.group import is_complete
    from uniopd.config import ExperimentConfig

    runs = tmp_path / "runs"
    cfg = ExperimentConfig.model_validate(
        {
            "name": "a-s0",
            "student": "builtin:student",
            "teachers": {"math": "builtin:teacher-math"},
            "data": {"train": ["builtin:math/train"]},
            "train": {"steps": 3},
            "output": {"root": str(runs)},
        }
    )
    (runs / "a-s0" / "checkpoints").mkdir(parents=True)  # the failed attempt
    assert not is_complete(cfg)
    (runs / "a-s0-2" / "checkpoints").mkdir(parents=True)
    (runs / "a-s0-2" / "checkpoints" / "latest").write_text("step_000002")
    assert not is_complete(cfg)  # stopped early
    (runs / "a-s0-2" / "checkpoints" / "latest").write_text("step_000003")
    assert is_complete(cfg)
    (runs / "a-s0-extra" / "checkpoints").mkdir(parents=True)  # another run's name: not ours
    (runs / "a-s0-extra" / "checkpoints" / "latest").write_text("step_000003")
    (runs / "a-s0-2" / "checkpoints" / "latest").write_text("step_000001")
    assert not is_complete(cfg)


def test_a_bad_file_stops_the_group_before_any_run(
    tiny_experiment, tmp_path, make_checkpoint, capsys
):
    folder, runs = tmp_path / "study", tmp_path / "runs"
    folder.mkdir()
    s, t = make_checkpoint(11), make_checkpoint(12)
    _write(tiny_experiment, folder, "a", s, t, runs)
    calibration = {"margin_shift": True, "margin_mask": True}
    _write(tiny_experiment, folder, "z", s, t, runs, calibration=calibration)
    assert main(["group", str(folder), "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "z.yaml" in err and "margin_mask" in err
    assert not runs.exists()


def test_group_overrides_apply_to_every_run(tiny_experiment, tmp_path, make_checkpoint):
    folder, runs = tmp_path / "study", tmp_path / "runs"
    folder.mkdir()
    path = _write(tiny_experiment, folder, "a", make_checkpoint(11), make_checkpoint(12), runs)
    assert main(["group", str(path), "--seeds", "4", "--set", "train.steps=2"]) == 0
    metrics = (runs / "a-s4" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["step"] for m in metrics] == [1, 2]
