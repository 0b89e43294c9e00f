"""The Uni-OPD release's setting as options: a pre-balanced data file trained on as given
(balance.offline.mode = prebalanced), passes over the data instead of a step count
(train.data_epochs, the release's --num-epoch) and no evaluation during OPD (eval.before /
eval.after off), through the real loop on 2-layer checkpoints."""

import json

import pytest

from uniopd.analysis.runs import load_runs
from uniopd.commands.cli import main
from uniopd.config import ConfigError, ExperimentConfig, load_experiment, save_resolved
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan

# a balanced file repeats the rows it upsampled: "2 + 2" twice, "3 + 3" three times
ROWS = [
    {"prompt": "What is 1 + 1?", "label": "2"},
    {"prompt": "What is 2 + 2?", "label": "4"},
    {"prompt": "What is 2 + 2?", "label": "4"},
    {"prompt": "What is 3 + 3?", "label": "6"},
    {"prompt": "What is 3 + 3?", "label": "6"},
    {"prompt": "What is 3 + 3?", "label": "6"},
]


def _balanced_file(tmp_path):
    path = tmp_path / "offline_data_balanced.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return {
        "source": str(path),
        "domain": "math",
        "columns": {"prompt": "prompt", "answer": "label"},
    }


def _trainer(tiny_experiment, make_checkpoint, tmp_path, **overrides):
    data = {"train": [_balanced_file(tmp_path)], "eval": ["builtin:math/test"]}
    cfg = tiny_experiment(
        make_checkpoint(11), make_checkpoint(12), data, tmp_path / "runs", **overrides
    )
    cfg = ExperimentConfig.model_validate(cfg)
    run = RunDir.create(cfg.output.root, cfg.name)
    return prepare(make_plan(cfg), run), run


def test_a_prebalanced_file_trains_as_given_without_an_estimate(
    tiny_experiment, make_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    trainer, run = _trainer(
        tiny_experiment,
        make_checkpoint,
        tmp_path,
        balance={"offline": {"mode": "prebalanced"}},
        train={"steps": 1},
        eval={"before": False, "after": False},
    )
    # the sampler draws from every row, copies included, in the file's proportions
    prompts = [p.prompt for p in trainer.sampler.problems]
    assert len(prompts) == 6
    assert (prompts.count("What is 2 + 2?"), prompts.count("What is 3 + 3?")) == (2, 3)
    drawn = [p.prompt for p in trainer.sampler.next_batch(6)]  # one pass: each row once
    assert sorted(drawn) == sorted(prompts)
    trainer.train()
    # no difficulty was sampled: an estimate would be cached and tabled
    assert not (tmp_path / "home" / "difficulty").exists()
    assert not (run.path / "difficulty" / "table.csv").exists()
    record = json.loads((run.path / "difficulty" / "prebalanced.json").read_text())
    assert record["estimated"] is False
    assert record["domains"] == {"math": {"rows": 6, "distinct_prompts": 3}}


def test_data_epochs_count_the_steps_and_eval_off_evaluates_nothing(
    tiny_experiment, make_checkpoint, tmp_path, capsys
):
    trainer, run = _trainer(
        tiny_experiment,
        make_checkpoint,
        tmp_path,
        train={"steps": None, "data_epochs": 2},  # 6 rows // 4 prompts = 1 step a pass
        rollout={"prompts_per_batch": 4},
        eval={"every": 0, "before": False, "after": False},
    )
    assert trainer.cfg.train.steps == 2
    assert trainer.train() == {}
    metrics = (run.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["step"] for m in metrics] == [1, 2]
    assert not (run.path / "eval.jsonl").exists()
    assert run.read_meta()["steps"] == 2
    # a resolved config saved after the count leaves it to the data, so it still reloads
    save_resolved(trainer.cfg, tmp_path / "config.yaml")
    saved = load_experiment(tmp_path / "config.yaml")
    assert (saved.train.data_epochs, saved.train.length()) == (2, "2 passes over the data")
    # the run is finished by the count at start, not by the config's placeholder steps: analysis
    # reads it (no evaluation asked for), and a resume says there is nothing left to do
    save_resolved(trainer.cfg, run.path / "config.yaml")
    runs = load_runs([run.path.parent])
    assert runs.skipped == [] and runs.info["steps"].tolist() == [2]
    assert main(["run", "--resume", str(run.path)]) == 0
    assert "already finished all 2 steps" in capsys.readouterr().err


def test_steps_and_data_epochs_together_are_refused(tmp_path, capsys):
    path = tmp_path / "both.yaml"
    path.write_text(
        "name: both\nstudent: builtin:student\nteachers: {math: builtin:teacher-math}\n"
        "data: {train: [builtin:math/train]}\ntrain: {steps: 30, data_epochs: 10}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert "train.steps" in str(err.value) and "data_epochs" in str(err.value)
    assert main(["validate", "--no-models", str(path)]) == 2
    message = capsys.readouterr().err
    assert "steps = 30 and data_epochs = 10" in message and "Traceback" not in message


def test_a_data_epochs_config_round_trips(tmp_path):
    cfg = ExperimentConfig.model_validate(
        {
            "name": "epochs",
            "student": "builtin:student",
            "teachers": {"math": "builtin:teacher-math"},
            "data": {"train": ["builtin:math/train"]},
            "train": {"data_epochs": 10},
        }
    )
    save_resolved(cfg, tmp_path / "config.yaml")
    assert "steps: null" in (tmp_path / "config.yaml").read_text()
    assert load_experiment(tmp_path / "config.yaml") == cfg
