"""docs/extending.md's recipes, done exactly as written and trained through a short real run."""

import json
from pathlib import Path

import pytest

from uniopd.config import ExperimentConfig
from uniopd.launch.start import start_run
from uniopd.objectives import OBJECTIVES
from uniopd.strategies import CALIBRATORS

DOCS = Path(__file__).parents[2] / "docs" / "extending.md"


def _cfg(tiny_experiment, tmp_path, student, teacher, **fields):
    """Each field given replaces the whole section."""
    cfg = tiny_experiment(
        student,
        teacher,
        {"train": ["builtin:math/train"], "limit": 12},
        tmp_path,
        name="recipe",
        seed=1,
        rollout={"group_size": 4, "prompts_per_batch": 3, "max_new_tokens": 10},
        train={"lr": 1e-3},
        eval=None,
        tracking={"wandb": "disabled"},
    )
    return ExperimentConfig.model_validate({**cfg, **fields})


def _metrics(run):
    return [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stem", ["clipped_opd", "outcome_bonus"])
def test_the_guide_shows_each_recipe_file_verbatim(stem):
    code = (Path(__file__).parent / f"{stem}.py").read_text()
    assert code in DOCS.read_text(), f"docs/extending.md no longer shows tests/extending/{stem}.py"


def test_a_new_objective_is_one_file_and_one_registration(
    tiny_experiment, recipe, make_checkpoint, tmp_path
):
    recipe("clipped_opd", OBJECTIVES, "clipped_opd")
    cfg = _cfg(
        tiny_experiment,
        tmp_path,
        make_checkpoint(11),
        make_checkpoint(12),
        method={"name": "clipped_opd", "options": {"clipped_opd": {"clip": 0.5}}},
    )
    run, _ = start_run(cfg)
    for line in (run.path / "rollouts" / "step_000001.jsonl").read_text().splitlines():
        assert max(abs(a) for a in json.loads(line)["advantages"]) <= 0.5
    assert len(_metrics(run)) == 2


def test_a_new_calibration_strategy_is_one_file_and_one_registration(
    tiny_experiment, recipe, make_checkpoint, coin, tmp_path
):
    recipe("outcome_bonus", CALIBRATORS, "outcome_bonus")
    cfg = _cfg(
        tiny_experiment,
        tmp_path,
        coin["student"],
        coin["teacher"],
        data={"train": [str(coin["data"])]},
        calibration={"strategy": "outcome_bonus", "options": {"bonus": 0.3}},
    )
    run, _ = start_run(cfg)
    metrics = _metrics(run)
    assert all(m["calibration/bonus"] == 0.3 for m in metrics)
    # on the coin task's mixed groups the bonus separates the returns: gap grows by 2 * 0.3
    gaps = [(m["order/mean_gap_after"] - m["order/mean_gap_before"]) for m in metrics]
    assert gaps == pytest.approx([0.6, 0.6], abs=1e-4)
