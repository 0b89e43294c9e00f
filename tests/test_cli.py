"""The command line as users run it: bad input exits 2 before any run directory exists, and the
whole pipeline (world build -> uniopd run -> uniopd eval) works on the `smoke` tiny world."""

import json
import shutil
from pathlib import Path

import pytest

from uniopd.cli import main

EXPERIMENTS = Path(__file__).parent.parent / "experiments"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("overrides, expect", [
    (["train.lr=abc"], "train.lr"),
    (["trian.lr=1"], "unknown key 'trian'"),
    (["teachers.code=null"], "teachers.code"),
    (["method.name=distill"], "method.name"),
    (["notakeyvalue"], "notakeyvalue"),
])
def test_bad_overrides_exit_2_without_a_run_directory(workdir, capsys, overrides, expect):
    assert main(["run", "experiments/quickstart.yaml", *overrides]) == 2
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") <= 3
    assert not (workdir / "runs").exists()


def test_malformed_file_names_file_and_line(workdir, capsys):
    bad = workdir / "experiments" / "bad.yaml"
    bad.write_text("# bad.yaml\nbase: _tiny_world.yaml\nname: bad\ntrain:\n  steps: [1\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "line" in err
    assert not (workdir / "runs").exists()


def test_missing_teacher_for_a_data_domain(workdir, capsys):
    cfg = workdir / "experiments" / "one_teacher.yaml"
    cfg.write_text("# one_teacher.yaml\nbase: _tiny_world.yaml\nname: one\n"
                   "teachers: {math: builtin:teacher-math}\n")
    # the base's code teacher is inherited, so drop it by naming a domain map without it
    text = (workdir / "experiments" / "_tiny_world.yaml").read_text()
    (workdir / "experiments" / "_tiny_world.yaml").write_text(text.replace("  code: builtin:teacher-code\n", ""))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "teachers.code" in err and "missing teacher" in err and "builtin:code/train" in err
    assert not (workdir / "runs").exists()


def test_unknown_domain_in_a_data_file(workdir, capsys):
    rows = workdir / "chess.jsonl"
    rows.write_text(json.dumps({"prompt": "mate in one", "domain": "chess", "answer": "Qh7"}) + "\n")
    assert main(["run", "experiments/quickstart.yaml", f"data.train=[{rows}]"]) == 2
    err = capsys.readouterr().err
    assert "unknown domain 'chess'" in err and "chess.jsonl" in err
    assert not (workdir / "runs").exists()


def test_broken_checkpoint_is_a_clear_error(workdir, capsys, make_checkpoint):
    broken = workdir / "broken"
    shutil.copytree(make_checkpoint(5), broken)
    (broken / "config.json").write_text("{not json")
    assert main(["run", "experiments/quickstart.yaml", f"student={broken}", "output.progress=false"]) == 2
    assert "broken" in capsys.readouterr().err


def test_smoke_world_end_to_end(workdir, monkeypatch, capsys):
    monkeypatch.setenv("UNIOPD_WORLD", "smoke")
    monkeypatch.setenv("UNIOPD_HOME", str(workdir / "home"))
    assert main(["world", "build"]) == 0
    manifest = json.loads(next((workdir / "home").glob("world-*/manifest.json")).read_text())
    assert set(manifest["models"]) == {"teacher-math", "teacher-code", "teacher-math-large", "student"}
    assert "grpo" in manifest["models"]["teacher-math"]  # experts went through domain GRPO
    args = ["experiments/quickstart.yaml", "train.steps=2", "eval.every=1", "eval.n_samples=1",
            "eval.pass_k=[1]", "eval.max_prompts_per_domain=2", "rollout.prompts_per_batch=2",
            "rollout.group_size=2", "rollout.max_new_tokens=8", "output.progress=false"]
    assert main(["run", *args]) == 0
    run = workdir / "runs" / "quickstart"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run / "config.yaml").exists() and (run / "meta.json").exists()
    assert main(["eval", str(run), "output.progress=false", "eval.n_samples=1", "eval.pass_k=[1]",
                 "eval.max_prompts_per_domain=2", "rollout.max_new_tokens=8"]) == 0
    assert "math: acc=" in capsys.readouterr().out
