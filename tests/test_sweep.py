"""Optuna sweeps: bad sweep files refused before any trial, a 2-worker sweep on SQLite, failures recorded."""

import json

import pytest
import yaml

from uniopd.commands.cli import main
from uniopd.config.load import ConfigError
from uniopd.sweep.spec import load_sweep

pytestmark = pytest.mark.sweep  # real sweeps with worker processes and a PostgreSQL cluster


def _base(tiny_experiment, tmp_path, student, teacher):
    cfg = tiny_experiment(
        student,
        {"math": teacher, "code": teacher},
        {"train": ["builtin:math/train"], "eval": ["builtin:math/test"], "limit": 8},
        None,
        name="b",
        eval={"every": 1, "n_samples": 2, "pass_k": [1, 2]},
    )
    path = tmp_path / "b.yaml"
    path.write_text("# b.yaml — sweep test base\n" + yaml.safe_dump(cfg))
    return path


def _sweep(tmp_path, **fields):
    spec = {
        "name": "s",
        "base": "b.yaml",
        "output": str(tmp_path / "out"),
        "space": {"calibration.delta": {"type": "float", "low": 0.0, "high": 1.0}},
        "overrides": ["calibration.margin_shift=true"],
        "sampler": {"kind": "random", "seed": 1},
        "objective": {"metric": "eval.mean.acc"},
        "trials": 3,
        "pruner": {"kind": "none"},
    }
    spec.update(fields)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    "fields, where, reason",
    [
        (
            {"space": {"calibration.delat": {"type": "float", "low": 0, "high": 1}}},
            "space.calibration.delat",
            "refused",
        ),
        (
            {"space": {"calibration.delta": {"type": "float", "low": -1, "high": 1}}},
            "space.calibration.delta",
            "greater than or equal",
        ),
        (
            {"objective": {"metric": "eval.mean.bleu"}},
            "objective.metric",
            "not a metric the runs log",
        ),
        (
            {"objective": {"metric": "eval.chess.acc"}},
            "objective.metric",
            "not a metric the runs log",
        ),
        ({"sampler": {"kind": "grid"}}, "sampler.kind", "step"),
        ({"trials": None}, "trials", "required"),
        ({"base": "missing.yaml"}, "base", "not found"),
    ],
)
def test_bad_sweep_files_are_refused_before_any_trial(
    tiny_experiment, tmp_path, make_checkpoint, fields, where, reason
):
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep(tmp_path, **fields))
    assert err.value.field == where and reason in str(err.value)
    assert not (tmp_path / "out").exists()


def test_unreachable_storage_is_a_clear_error(tiny_experiment, tmp_path, make_checkpoint, capsys):
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    code = main(
        ["sweep", str(_sweep(tmp_path)), "--storage", "postgresql://nobody@127.0.0.1:1/none"]
    )
    assert code == 2 and "cannot open storage" in capsys.readouterr().err


def test_two_worker_sweep_on_sqlite_finishes_every_trial(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    path = _sweep(tmp_path)
    assert main(["sweep", str(path), "--workers", "2"]) == 0
    summary = json.loads((tmp_path / "out" / "s" / "summary.json").read_text())
    # at least the 3 asked for; two workers racing for the last slot may finish one more
    complete = summary["trials"]["complete"]
    assert 3 <= complete <= 4 and summary["trials"]["fail"] == 0
    assert set(summary["best"]["params"]) == {"calibration.delta"}
    trials = sorted((tmp_path / "out" / "s" / "trials").iterdir())
    assert [t.name for t in trials] == [f"trial-{i:04d}-s0" for i in range(complete)]
    for t in trials:  # each trial is an ordinary run directory that names its trial
        info = json.loads((t / "trial.json").read_text())
        cfg = yaml.safe_load((t / "config.yaml").read_text())
        assert cfg["calibration"]["delta"] == pytest.approx(info["params"]["calibration.delta"])
        assert (t / "eval.jsonl").exists()
    # the same command again: the study is loaded, nothing is re-run
    assert main(["sweep", str(path), "--workers", "2"]) == 0
    assert len(list((tmp_path / "out" / "s" / "trials").iterdir())) == complete


def test_a_trial_that_raises_is_recorded_and_the_sweep_goes_on(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    # the student is a categorical choice: one value is a broken checkpoint, found only at run time
    path = _sweep(
        tmp_path,
        space={
            "student": {"type": "categorical", "choices": [str(make_checkpoint(11)), str(broken)]}
        },
        sampler={"kind": "grid"},
        trials=None,
        overrides=[],
    )
    assert main(["sweep", str(path)]) == 0
    summary = json.loads((tmp_path / "out" / "s" / "summary.json").read_text())
    assert summary["trials"]["complete"] == 1 and summary["trials"]["fail"] == 1
    errors = list((tmp_path / "out" / "s" / "trials").glob("*/error.txt"))
    assert len(errors) == 1 and "broken: could not load the" in errors[0].read_text()


def test_two_workers_share_one_postgresql_study(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch, postgres_url
):
    import optuna

    monkeypatch.chdir(tmp_path)
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    path = _sweep(tmp_path, trials=4)
    assert main(["sweep", str(path), "--workers", "2", "--storage", postgres_url]) == 0
    study = optuna.load_study(study_name="s", storage=postgres_url)
    states = [t.state for t in study.trials]
    complete = states.count(optuna.trial.TrialState.COMPLETE)
    assert 4 <= complete <= 5 and len(states) == complete
    summary = json.loads((tmp_path / "out" / "s" / "summary.json").read_text())
    assert summary["trials"]["complete"] == complete
    assert len(list((tmp_path / "out" / "s" / "trials").iterdir())) == complete


def test_parallel_workers_propose_different_trials(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    assert main(["sweep", str(_sweep(tmp_path, trials=4)), "--workers", "2"]) == 0
    import pandas as pd

    deltas = pd.read_csv(tmp_path / "out" / "s" / "trials.csv")["params_calibration.delta"]
    assert deltas.nunique() == len(deltas) >= 4, deltas.tolist()


def test_grid_with_two_workers_covers_every_point_once(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _base(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    path = _sweep(
        tmp_path,
        sampler={"kind": "grid"},
        trials=None,
        space={"calibration.delta": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}},
    )
    assert main(["sweep", str(path), "--workers", "2"]) == 0
    import pandas as pd

    deltas = sorted(pd.read_csv(tmp_path / "out" / "s" / "trials.csv")["params_calibration.delta"])
    assert deltas == [0.0, 0.25, 0.5, 0.75, 1.0]
