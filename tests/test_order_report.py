"""METHOD 4.3 through the loop's own path (compute_advantages -> order_report): rollouts with no
return to compare stay out of the margin statistics and the order metrics, and so, after
calibration, do the rollouts the greedy mask dropped. Each case failed on the code before
2026-11-29, which scored them as returns of 0."""

import pytest
import torch

from uniopd.config.method import MethodConfig
from uniopd.config.uni_opd import CalibrationConfig
from uniopd.loop.advantages import compute_advantages
from uniopd.loop.order_metrics import order_report
from uniopd.objectives import Signals

NAN = float("nan")


def _advantages(teacher_N_T, mask_N_T, correct_N, groups_N, calibration):
    student = torch.zeros_like(teacher_N_T)
    signals = Signals(
        rows=torch.arange(len(correct_N)),
        mask_N_T=mask_N_T,
        student_logp_N_T=student,
        response_ids_N_T=torch.zeros_like(mask_N_T, dtype=torch.long),
        rewards_N=correct_N,
        group_ids_N=groups_N,
        teacher_logp_N_T=teacher_N_T,
    )
    objectives = MethodConfig(name="opd").objectives()
    calibrator = CalibrationConfig.model_validate(calibration).calibrator()
    keep = torch.ones(len(correct_N), dtype=torch.bool)
    return compute_advantages(objectives, signals, keep, calibrator, correct_N.clone())


def _rows(returns, lengths):
    """Teacher log-probs whose token mean is `returns` (student log-probs 0), and the masks."""
    T = max(lengths)
    teacher = torch.full((len(returns), T), NAN)
    mask = torch.zeros(len(returns), T)
    for i, (g, n) in enumerate(zip(returns, lengths, strict=True)):
        teacher[i, :n], mask[i, :n] = g, 1.0
    return teacher, mask


def test_empty_and_unscored_rollouts_are_out_of_the_margin_and_the_order():
    # group 0: correct {-0.1}, incorrect {-0.3}, plus an empty correct response and an incorrect
    # one the teacher failed on (all NaN): scored as 0 they would add the pair (0 vs 0) and the
    # pairs (-0.1 vs 0), which is out of order, and pull the incorrect mean up to -0.15
    teacher, mask = _rows([-0.1, -0.3, 0.0, -0.2], [3, 3, 0, 3])
    teacher[3] = NAN
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0])
    groups = torch.zeros(4, dtype=torch.long)
    adv = _advantages(teacher, mask, correct, groups, {"margin_shift": True, "delta": 0.4})
    assert adv.scored_N.tolist() == [True, True, False, False]
    report = order_report(adv, correct, groups)
    assert report["order/pairs_before"] == 1
    assert report["order/consistency_before"] == 1.0
    assert report["order/group_consistency_before"] == 1.0
    assert report["order/mean_gap_before"] == pytest.approx(0.2)
    # the shift sees only the two scored rollouts: gap 0.2 -> s = 0.2, 0.1 each way
    assert report["calibration/mean_shift"] == pytest.approx(0.2)
    assert report["order/mean_gap_after"] == pytest.approx(0.4)


def test_rollouts_the_greedy_mask_dropped_are_not_scored_after_calibration():
    # correct {0.0, -0.5, 0.1}, incorrect {-0.2, 0.3}; mean mode, delta 0.1: the mask drops the
    # worst correct (-0.5) and the best incorrect (0.3). Scored as returns of 0, they would make
    # pairs (0 vs 0) and pull the mean gap after calibration down to 0.8 / 6
    teacher, mask = _rows([0.0, -0.5, 0.1, -0.2, 0.3], [2] * 5)
    correct = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    groups = torch.zeros(5, dtype=torch.long)
    adv = _advantages(
        teacher,
        mask,
        correct,
        groups,
        {"margin_mask": True, "delta": 0.1, "mode": "mean", "min_retain_ratio": 0.25},
    )
    assert adv.dropped_N is not None
    assert adv.dropped_N.tolist() == [False, True, False, False, True]
    report = order_report(adv, correct, groups)
    assert report["order/pairs_before"] == 6 and report["order/pairs_after"] == 2
    assert report["order/consistency_before"] == pytest.approx(2 / 6)
    assert report["order/group_consistency_before"] == 0.0
    assert report["order/consistency_after"] == 1.0
    assert report["order/group_consistency_after"] == 1.0
    assert report["order/mean_gap_after"] == pytest.approx((0.2 + 0.3) / 2)
