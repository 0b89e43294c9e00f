"""Training offline from a pair file (data.pairs, docs/method.md 9.4): a short real run trains on
exactly the file's pairs, scored by the file when asked; the shipped pair file and its experiment
load from any folder; a bad pair file, or a setting that acts on sampled rollouts, is refused
before any model loads, naming the file, the row or the field; the methods' labels in
comparisons and dashboards."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_preference_run import _refusal as refusal

from uniopd.commands.cli import main
from uniopd.config import ExperimentConfig, load_experiment
from uniopd.data.errors import DataError
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan
from uniopd.tracking.panels import comparison_sections, preference_section

PREFERENCE = Path(__file__).resolve().parents[1] / "experiments" / "preference"
SHIPPED = PREFERENCE / "data" / "tiny_pairs.jsonl"


def _pairs(tmp_path, rows, name="pairs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(i, **extra):
    row = {
        "prompt": f"What is {i} + 1?",
        "chosen": f"{i} + 1 = {i + 1}. The answer is \\boxed{{{i + 1}}}.",
        "rejected": f"{i} + 1 = {i + 2}. The answer is \\boxed{{{i + 2}}}.",
        "domain": "math",
    }
    return {**row, **extra}


def _cfg(tiny_experiment, student, pairs, root, **overrides) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        tiny_experiment(
            student,
            {},
            {"pairs": str(pairs)},
            root,
            method=overrides.pop("method", {"name": "dpo"}),
            eval=None,
            tracking={"wandb": "disabled"},
            **overrides,
        )
    )


@pytest.mark.slow  # about 6 s: two steps of a 2-layer model
def test_a_short_run_trains_on_exactly_the_files_pairs(make_checkpoint, tiny_experiment, tmp_path):
    rows = [_row(i, scores=[1.0 + i, -float(i)]) for i in range(4)]
    cfg = _cfg(
        tiny_experiment,
        make_checkpoint(5),
        _pairs(tmp_path, rows),
        tmp_path / "runs",
        method={"name": "omni_dpo", "options": {"omni_dpo": {"score": "file"}}},
        train={"lr": 1e-3, "steps": 2},
        rollout={"prompts_per_batch": 2, "max_new_tokens": 64},
        output={"log_rollouts_every": 1},
    )
    trainer = prepare(make_plan(cfg), RunDir.create(cfg.output.root, cfg.name))
    trainer.train()
    path = trainer.run_dir.path
    metrics = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    assert [m["pairs/omni_dpo/count"] for m in metrics] == [2.0, 2.0]  # one pair per file row
    assert metrics[1]["pairs/omni_dpo/margin"] != 0.0  # the first step moved the policy
    # the dashboards' preference charts draw what a pair run logs
    charted = {m for c in preference_section().charts for m in c.metrics if "omni_dpo" in m}
    assert len(charted) == 4 and charted <= set(metrics[0])
    # the rows are the file's responses, chosen (1) then rejected (0), never a sampled one
    logged = [
        json.loads(x) for x in (path / "rollouts" / "step_000001.jsonl").read_text().splitlines()
    ]
    by_prompt = {r["prompt"]: r for r in rows}
    seen = set()
    for a, b in zip(logged[::2], logged[1::2]):
        row = next(r for r in rows if r["chosen"] == a["completion"])
        assert (a["reward"], b["reward"]) == (1.0, 0.0) and b["completion"] == row["rejected"]
        seen.add(row["prompt"])
    assert len(seen) == 2 and seen <= set(by_prompt)


def test_the_file_scores_reach_the_pairs():
    import torch

    from uniopd.loop.pairs import quality_scores, rollout_pairs

    rewards, groups = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0, 0, 1, 1])
    file_scores = torch.tensor([7.5, 2.0, 9.0, 8.5])
    s = quality_scores("file", rewards, torch.ones(4, 3), None, file_scores)
    p = rollout_pairs(rewards, groups, torch.ones(4, dtype=torch.bool), s)
    assert (p.chosen_P.tolist(), p.rejected_P.tolist()) == ([0, 2], [1, 3])
    assert p.score_N.tolist() == [7.5, 2.0, 9.0, 8.5]


def test_the_shipped_file_and_experiment_load_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data.pairs is read beside the experiment file
    cfg = load_experiment(PREFERENCE / "dpo_from_file.yaml")
    assert Path(cfg.data.pairs) == SHIPPED and cfg.data.train == []
    plan = make_plan(cfg, models=False)
    assert len(plan.train) == 200 and {p.domain for p in plan.train} == {"math", "code"}
    assert all(p.meta["score_chosen"] == 1.0 for p in plan.train)
    assert SHIPPED.stat().st_size < 200_000
    from uniopd.labels import method_group

    assert method_group(cfg) == "DPO (pair file)"


def _plan_error(tiny_experiment, tmp_path, rows, **overrides) -> str:
    cfg = _cfg(tiny_experiment, "builtin:student", _pairs(tmp_path, rows), None, **overrides)
    with pytest.raises(DataError) as err:
        make_plan(cfg, models=False)
    return str(err.value)


def test_a_bad_pair_file_is_refused_naming_the_file_the_row_and_the_column(
    tiny_experiment, tmp_path
):
    rows = [_row(0), {k: v for k, v in _row(1).items() if k != "rejected"}]
    msg = _plan_error(tiny_experiment, tmp_path, rows)
    assert "pairs.jsonl: row 2: missing column rejected" in msg
    msg = _plan_error(tiny_experiment, tmp_path, [_row(0), _row(1, chosen="  ")])
    assert "row 2: column chosen is empty" in msg
    same = _row(0)
    msg = _plan_error(tiny_experiment, tmp_path, [{**same, "rejected": same["chosen"]}])
    assert "row 1: chosen and rejected are the same response" in msg
    msg = _plan_error(tiny_experiment, tmp_path, [_row(0, id="a"), _row(1, id="a")])
    assert "row 2: id 'a' is already row 1's" in msg
    scored = {"name": "dpo", "options": {"dpo": {"score": "file"}}}
    msg = _plan_error(tiny_experiment, tmp_path, [_row(0, scores=[1, 0]), _row(1)], method=scored)
    assert "pairs.jsonl: row 2: no scores column" in msg and "score: file" in msg


@pytest.mark.parametrize(
    "overrides, fields, words",
    [
        ({"method": {"name": "grpo+dpo"}}, "data.pairs", "grpo, which learn from sampled"),
        ({"balance": {"online": {"enabled": True}}}, "balance.online.enabled", "samples none"),
        ({"balance": {"offline": {"mode": "balance"}}}, "balance.offline.mode", "not prompts"),
    ],
    ids=["rollout-objective", "online-balancing", "offline-balancing"],
)
def test_a_rollout_only_setting_with_a_pair_file_is_refused(
    tiny_experiment, tmp_path, overrides, fields, words
):
    with pytest.raises(ValidationError) as err:
        _cfg(tiny_experiment, "builtin:student", tmp_path / "p.jsonl", None, **overrides)
    (e,) = err.value.errors()
    assert words in e["msg"] and e["ctx"]["fields"][0] == fields


def _refusal(tmp_path, text: str) -> str:
    """The refusal of `text` written over experiments/preference/dpo_from_file.yaml."""
    return refusal(tmp_path, text, "dpo_from_file.yaml")


def test_pairs_and_prompts_are_one_or_the_other(tmp_path):
    msg = _refusal(tmp_path, "data: {train: [builtin:math/train]}\n")
    assert "bad.yaml: data.train" in msg and "keep one" in msg
    msg = _refusal(tmp_path, "data: {pairs: null}\n")
    assert "data.train" in msg and "no training data" in msg
    # score: file reads a pair file's scores: without one it has nothing to read
    msg = _refusal(tmp_path, "data: {pairs: null, train: [builtin:math/train]}\n")
    assert "objective dpo reads each pair's scores from a pair file" in msg


def test_the_command_line_refuses_a_bad_pair_file_with_exit_code_2(
    tmp_path, capsys, no_model_loads
):
    pairs = _pairs(tmp_path, [_row(0), {"prompt": "q", "chosen": "a"}])
    code = main(
        ["validate", str(PREFERENCE / "dpo_from_file.yaml"), "--set", f"data.pairs={pairs}"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "row 2: missing column rejected" in err and "Traceback" not in err


def test_the_preference_methods_have_their_place_in_comparisons():
    from uniopd.labels import METHOD_ORDER, method_group, method_rank  # (new here: issue 31)

    assert METHOD_ORDER[:3] == ("OPD", "Uni-OPD", "GRPO")
    groups = ["C-DPO", "GRPO", "Omni-DPO w/o w_qual", "JSD", "DPO", "Omni-DPO", "OPD", "Uni-OPD"]
    assert sorted(groups, key=method_rank) == [
        "OPD",
        "Uni-OPD",
        "GRPO",
        "DPO",
        "Omni-DPO",
        "Omni-DPO w/o w_qual",
        "C-DPO",
        "JSD",
    ]
    for name, group in [
        ("omni_dpo.yaml", "Omni-DPO"),
        ("omni_dpo_no_quality.yaml", "Omni-DPO w/o w_qual"),
        ("omni_dpo_no_dynamics.yaml", "Omni-DPO w/o w_perf"),
        ("dpo.yaml", "DPO"),
    ]:
        assert method_group(load_experiment(PREFERENCE / name)) == group
    (section,) = [s for s in comparison_sections(["math"]) if s.name.startswith("Preference")]
    charts = {c.title: c.metrics for c in section.charts}
    assert charts["preference loss"] == ("loss/cdpo", "loss/dpo", "loss/omni_dpo")
    assert "pairs/omni_dpo/reward_accuracy" in {m for ms in charts.values() for m in ms}
