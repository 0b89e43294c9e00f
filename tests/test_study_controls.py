"""Study v2's controls (docs/study.md): the margin shift's uniform outcome bonus (no `gap < δ`
condition) and each outcome's share of the step's gradient, worked by hand and through the loop."""

import json
import math

import pytest
import torch

from uniopd.algorithms import distillation_returns, margin_shift
from uniopd.algorithms.gradient_share import gradient_share
from uniopd.algorithms.uniform_bonus import uniform_bonus
from uniopd.config import ExperimentConfig
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan

NAN = float("nan")

# group 0: METHOD 4.1's worked example (mean gap -0.10: the shift moves it by 0.50);
# group 1: already ordered beyond delta (gap 0.50: the shift leaves it); group 2: all correct
RETURNS = [-0.20, -0.24, -0.10, -0.14, 0.60, 0.50, 0.00, 0.10, 0.30, 0.20]
CORRECT = torch.tensor([1.0, 1, 0, 0, 1, 1, 0, 0, 1, 1])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])


def _constant(returns, length=3):
    mask = torch.ones(len(returns), length + 1)
    mask[:, -1] = 0  # one padding column that must stay untouched
    return torch.tensor(returns)[:, None] * mask, mask


def test_uniform_bonus_spreads_the_shifts_total_over_every_mixed_group():
    adv, mask = _constant(RETURNS)
    out, st, would = uniform_bonus(adv, mask, CORRECT, GROUPS, delta=0.4)
    moved = distillation_returns(out, mask) - torch.tensor(RETURNS)
    # the shift's mean over the 2 mixed groups: (0.50 + 0) / 2 = 0.25, half up and half down
    assert moved.tolist() == pytest.approx(
        [0.125] * 2 + [-0.125] * 2 + [0.125] * 2 + [-0.125] * 2 + [0, 0]
    )
    assert (st.mixed, st.calibrated, st.mean_shift, would) == (2, 2, pytest.approx(0.25), 0.5)
    assert torch.equal(out[:, -1], adv[:, -1])  # off the mask: nothing added
    shifted, _ = margin_shift(adv, mask, CORRECT, GROUPS, delta=0.4)
    total = lambda a: float((distillation_returns(a, mask) - torch.tensor(RETURNS)).abs().sum())  # noqa: E731
    assert total(out) == pytest.approx(total(shifted))  # the same advantage moved, elsewhere


def test_uniform_bonus_fixed_size_direction_and_ungraded_rows():
    adv, mask = _constant(RETURNS)
    correct = CORRECT.clone()
    correct[1] = NAN  # ungraded: out of the statistics, unmoved
    out, st, _ = uniform_bonus(adv, mask, correct, GROUPS, 0.4, direction="correct_up", bonus=0.3)
    moved = (distillation_returns(out, mask) - torch.tensor(RETURNS)).tolist()
    assert moved == pytest.approx([0.3, 0, 0, 0, 0.3, 0.3, 0, 0, 0, 0])
    assert st.mean_shift == pytest.approx(0.3)
    with pytest.raises(ValueError, match="direction"):
        uniform_bonus(adv, mask, CORRECT, GROUPS, 0.4, direction="sideways")
    none, st, would = uniform_bonus(adv[8:], mask[8:], CORRECT[8:], GROUPS[8:], 0.4)
    assert torch.equal(none, adv[8:]) and (st.mixed, st.mean_shift, would) == (0, 0.0, 0.0)


def test_gradient_share_weighs_each_rollout_by_its_token_mean_of_abs_advantage():
    adv = torch.tensor([[1.0, -1.0, 0.0], [0.5, 0.5, 0.5], [-2.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
    # weights 1.0, 0.5, 2.0 and 9.0 (ungraded: in neither share)
    shares = gradient_share(adv, mask, torch.tensor([1.0, 1.0, 0.0, NAN]))
    assert shares == pytest.approx((1.5 / 3.5, 2.0 / 3.5))
    masked = mask.clone()
    masked[2] = 0  # online balancing masked the incorrect rollout: correct drives it all
    assert gradient_share(adv, masked, torch.tensor([1.0, 1.0, 0.0, NAN])) == (1.0, 0.0)
    assert gradient_share(adv * 0, mask, torch.tensor([1.0, 1.0, 0.0, 0.0])) is None


@pytest.mark.slow
def test_uniform_bonus_and_gradient_shares_in_the_loop(tiny_experiment, coin, tmp_path):
    """Registered, built from an experiment file's words, and logged every step on a task whose
    groups are mixed (the coin task of tests/test_uni_opd_run.py)."""
    cfg = tiny_experiment(
        coin["student"],
        coin["teacher"],
        [coin["data"]],
        tmp_path / "runs",
        name="coin-bonus",
        seed=3,
        rollout={"group_size": 8, "prompts_per_batch": 4, "max_new_tokens": 8},
        train={"steps": 2, "lr": 1e-4},
        eval=None,
    )
    cfg = ExperimentConfig.model_validate(
        {
            **cfg,
            "balance": {"online": {"enabled": True, "ratio": float("inf")}},
            "calibration": {"strategy": "uniform_bonus", "delta": 0.4},
        }
    )
    run = RunDir.create(cfg.output.root, cfg.name)
    prepare(make_plan(cfg), run).train()
    metrics = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    mixed = [m for m in metrics if m["calibration/mixed_units"]]
    assert len(metrics) == 2 and mixed, "the coin task should give mixed groups"
    for m in mixed:
        assert m["calibration/calibrated_frac"] == (1.0 if m["calibration/mean_shift"] else 0.0)
        assert 0.0 <= m["calibration/shift_would_frac"] <= 1.0
    for m in metrics:  # r = inf keeps only correct rollouts where a group has both
        c, w = m["balance/grad_share_correct"], m["balance/grad_share_incorrect"]
        assert c is not None and math.isclose(c + w, 1.0) and c > w


def test_a_calibrator_named_by_strategy_is_labelled_by_its_name(tiny_experiment, tmp_path):
    """Runs are grouped by uniopd.labels.method_group: the uniform-bonus control is not plain OPD
    (study v2's f0/bonus runs were drawn and tabled as "OPD" before), and `strategy:
    margin_shift` is the same Uni-OPD as `margin_shift: true`."""
    from uniopd.analysis.runs import _info_row
    from uniopd.labels import method_group

    base = tiny_experiment(
        "builtin:student", {"math": "builtin:teacher-math"}, ["builtin:math"], tmp_path
    )
    balance = {"offline": {"mode": "balance"}, "online": {"enabled": True, "ratio": 1.0}}

    def cfg(calibration, **more):
        return ExperimentConfig.model_validate({**base, "calibration": calibration, **more})

    bonus = cfg({"strategy": "uniform_bonus"})
    assert method_group(bonus) == "OPD + uniform-bonus"
    assert _info_row("b", str(tmp_path), bonus, [], None)["calibration"] == "uniform_bonus"
    by_name, by_switch = (
        cfg({"strategy": "margin_shift"}, balance=balance),
        cfg({"margin_shift": True}, balance=balance),
    )
    assert method_group(by_name) == method_group(by_switch) == "Uni-OPD"
    assert _info_row("u", str(tmp_path), by_name, [], None)["calibration"] == "shift"
    assert method_group(cfg({"strategy": "none"})) == "OPD"
