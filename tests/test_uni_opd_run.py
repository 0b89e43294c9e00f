"""Uni-OPD through the real loop: balancing, calibration and their logs on a 'coin' task.

The task makes mixed groups certain without any fake: every prompt's answer is 1 or 2, and the
students are real 2-layer checkpoints warm-started to answer \\boxed{1} or \\boxed{2} at random, so
math-verify grades about half of each group correct.
"""

import json

import pytest

from uniopd.config import ExperimentConfig
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan


def _run(tiny_experiment, coin, tmp_path, **sections):
    """Each section given replaces the whole of the base's."""
    cfg = tiny_experiment(
        coin["student"],
        coin["teacher"],
        [coin["data"]],
        tmp_path / "runs",
        name="coin",
        seed=3,
        rollout={"group_size": 8, "prompts_per_batch": 4, "max_new_tokens": 8},
        train={"steps": 3, "lr": 1e-4},
        eval=None,
    )
    cfg = ExperimentConfig.model_validate({**cfg, **sections})
    run = RunDir.create(cfg.output.root, cfg.name)
    prepare(make_plan(cfg), run).train()
    metrics = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    return run, metrics


def test_full_uni_opd_logs_why_it_helps(tiny_experiment, coin, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    run, metrics = _run(
        tiny_experiment,
        coin,
        tmp_path,
        balance={
            "offline": {"mode": "balance", "n_samples": 4},
            "online": {"enabled": True, "ratio": 1.0},
        },
        calibration={"margin_shift": True, "mode": "minmax", "delta": 0.2},
    )
    mixed_steps = [m for m in metrics if m["order/pairs_before"] > 0]
    assert mixed_steps, "the coin task should give mixed groups"
    for m in metrics:
        assert m["balance/kept"] + m["balance/masked"] == 32
        assert 0 <= m["time/calibrate"] < m["time/step"]
    for m in mixed_steps:
        # METHOD 4: after a minmax shift with delta > 0 every mixed group is ordered
        assert m["order/consistency_after"] == 1.0
        assert m["order/mean_gap_after"] >= m["order/mean_gap_before"]
        assert m["balance/masked"] > 0 and m["calibration/mixed_units"] > 0
    # the rollout records say which rollouts online balancing kept, and masked ones train on nothing
    recs = [
        json.loads(x)
        for x in (run.path / "rollouts" / "step_000001.jsonl").read_text().splitlines()
    ]
    assert sum(not r["kept"] for r in recs) == metrics[0]["balance/masked"]
    assert all(a == 0 for r in recs if not r["kept"] for a in r["advantages"])
    # per-run pairs for the order-consistency heatmap: one correct and one incorrect, same prompt
    pairs = [json.loads(x) for x in (run.path / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(
        len(p["correct"]["tokens"]) == len(p["correct"]["before"]) == len(p["correct"]["after"])
        for p in pairs
    )
    # offline balancing: table and histograms, every prompt kept at least once
    hist = json.loads((run.path / "difficulty" / "histograms.json").read_text())["math"]
    assert sum(hist["before"]) == 24 and sum(hist["after"]) >= 24
    table = (run.path / "difficulty" / "table.csv").read_text().splitlines()
    assert table[0].startswith("prompt_id,domain,level,pass_count") and len(table) == 25


def test_difficulty_estimate_is_cached_across_runs(tiny_experiment, coin, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    balance = {"offline": {"mode": "balance", "n_samples": 4}}
    train = {"steps": 1, "warmup_steps": 0}
    first, _ = _run(tiny_experiment, coin, tmp_path, balance=balance, train=train)
    cached = list((tmp_path / "home" / "difficulty").glob("*.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    balance["offline"]["ratio"] = 0.5  # a sweep over the ratio reuses the estimate
    second, _ = _run(tiny_experiment, coin, tmp_path, balance=balance, train=train)
    assert list((tmp_path / "home" / "difficulty").glob("*.json")) == cached
    assert cached[0].stat().st_mtime_ns == stamp
    t1 = (first.path / "difficulty" / "table.csv").read_text().splitlines()
    t2 = (second.path / "difficulty" / "table.csv").read_text().splitlines()
    assert [r.split(",")[3] for r in t1] == [r.split(",")[3] for r in t2]  # same pass counts


def test_an_estimate_with_ungraded_samples_is_not_cached(
    tiny_experiment, coin, tmp_path, monkeypatch, caplog
):
    """Graded by the code verifier, the coin's math rows have no tests: every sample is "could
    not grade". The run goes on, but an estimate made of such samples must not be cached, or every
    later run with the same settings would trust it (seen when a sandbox could not start)."""
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    balance = {"offline": {"mode": "balance", "n_samples": 2}}
    with caplog.at_level("WARNING", logger="uniopd.loop.difficulty"):
        run, _ = _run(
            tiny_experiment,
            coin,
            tmp_path,
            balance=balance,
            verifiers={"math": "code"},
            train={"steps": 1},
        )
    assert not list((tmp_path / "home" / "difficulty").glob("*.json"))
    assert "48 of 48 samples could not be graded" in caplog.text
    assert (run.path / "difficulty" / "table.csv").exists()
    # the run records how each domain was graded (here: with or without namespaces)
    graders = json.loads((run.path / "meta.json").read_text())["graders"]
    assert graders["math"].startswith("code: sandbox with ")


def test_margin_mask_and_calibration_under_micro_batches(
    tiny_experiment, coin, tmp_path, monkeypatch
):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    calibration = {"margin_mask": True, "delta": 0.4}
    _, whole = _run(tiny_experiment, coin, tmp_path, calibration=calibration)
    _, split = _run(
        tiny_experiment,
        coin,
        tmp_path,
        calibration={"margin_mask": True, "delta": 0.4},
        train={"steps": 3, "lr": 1e-4, "warmup_steps": 0, "micro_batch_size": 8},
    )
    for a, b in zip(whole, split):
        # split into micro-batches, the calibration still sees the whole batch: same numbers
        assert a["calibration/mixed_units"] == b["calibration/mixed_units"]
        assert a["calibration/dropped_rollouts"] == b["calibration/dropped_rollouts"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)


def test_filtering_that_leaves_no_prompt_is_a_clear_error(
    make_checkpoint, tmp_path, monkeypatch, capsys
):
    from uniopd.commands.cli import main

    # random 2-layer students solve nothing, so dropping all-wrong prompts leaves none
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    s, t = make_checkpoint(11), make_checkpoint(12)
    code = main(
        [
            "run",
            "experiments/ablations/drop_all_wrong.yaml",
            f"student={s}",
            f"teachers.math={t}",
            f"teachers.code={t}",
            "data.limit=4",
            "balance.offline.n_samples=1",
            "rollout.max_new_tokens=4",
            f"output.root={tmp_path / 'runs'}",
            "output.progress=false",
        ]
    )
    assert code == 2
    assert "no code training prompt is left" in capsys.readouterr().err
