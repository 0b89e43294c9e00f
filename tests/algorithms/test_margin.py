"""Margin calibration (METHOD 4.1 / 4.2): the worked example, edge cases, and the order it restores."""

import math

import pytest
import torch

from uniopd.algorithms import distillation_returns, margin_mask, margin_shift, order_consistency

NAN = float("nan")


def rollouts(returns, lengths=None):
    """Advantages whose token mean per rollout is `returns`, with uneven lengths and padding."""
    lengths = lengths or [3 + i % 3 for i in range(len(returns))]
    T = max(lengths) + 1
    mask = torch.zeros(len(returns), T)
    adv = torch.zeros(len(returns), T)
    for i, (g, n) in enumerate(zip(returns, lengths)):
        mask[i, :n] = 1
        # token structure inside the rollout that the shift must keep: +-0.1 around the mean
        wiggle = torch.tensor([0.1 * (-1) ** t for t in range(n)])
        wiggle -= wiggle.mean()
        adv[i, :n] = g + wiggle
        adv[i, n:] = 7.0  # garbage outside the mask must not leak into anything
    return adv, mask


# METHOD 4.1 worked example: correct {-0.20, -0.24}, incorrect {-0.10, -0.14}, delta 0.4
EXAMPLE = [-0.20, -0.24, -0.10, -0.14]
CORRECT = torch.tensor([1.0, 1.0, 0.0, 0.0])
ONE_GROUP = torch.zeros(4, dtype=torch.long)


def test_worked_example_mean_both():
    adv, mask = rollouts(EXAMPLE)
    out, stats = margin_shift(
        adv, mask, CORRECT, ONE_GROUP, delta=0.4, mode="mean", direction="both"
    )
    g = distillation_returns(out, mask)
    assert stats.mean_shift == pytest.approx(0.50)
    assert (out - adv)[0, 0] == pytest.approx(0.25) and (out - adv)[2, 0] == pytest.approx(-0.25)
    assert g[:2].mean() == pytest.approx(0.03, abs=1e-6)
    assert g[2:].mean() == pytest.approx(-0.37, abs=1e-6)
    assert g[:2].mean() - g[2:].mean() == pytest.approx(0.40, abs=1e-6)
    # a constant per rollout: the token structure inside each rollout is unchanged
    torch.testing.assert_close((out - adv) * mask, ((out - adv) * mask)[:, :1] * mask)
    assert torch.equal(out[mask == 0], adv[mask == 0])


def test_worked_example_minmax():
    adv, mask = rollouts(EXAMPLE)
    out, stats = margin_shift(
        adv, mask, CORRECT, ONE_GROUP, delta=0.4, mode="minmax", direction="both"
    )
    assert stats.mean_shift == pytest.approx(0.54)
    g = distillation_returns(out, mask)
    assert g[:2].min() - g[2:].max() == pytest.approx(0.40, abs=1e-6)


@pytest.mark.parametrize(
    "direction, up, down", [("correct_up", 0.5, 0.0), ("incorrect_down", 0.0, -0.5)]
)
def test_one_sided_directions_move_one_side_by_the_whole_shift(direction, up, down):
    adv, mask = rollouts(EXAMPLE)
    out, _ = margin_shift(
        adv, mask, CORRECT, ONE_GROUP, delta=0.4, mode="mean", direction=direction
    )
    shift = distillation_returns(out, mask) - distillation_returns(adv, mask)
    torch.testing.assert_close(shift, torch.tensor([up, up, down, down]))


def test_gap_already_above_delta_is_untouched():
    adv, mask = rollouts([0.5, 0.4, -0.3, -0.2])
    out, stats = margin_shift(adv, mask, CORRECT, ONE_GROUP, delta=0.4, mode="mean")
    assert torch.equal(out, adv) and stats.calibrated == 0 and stats.mixed == 1


def test_one_outcome_groups_and_nan_outcomes():
    # group 0 all correct, group 1 all wrong, group 2 mixed with one ungraded rollout
    returns = [-0.5, -0.1, 0.2, 0.3, -0.2, 0.1, 0.9]
    correct = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, NAN])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    adv, mask = rollouts(returns)
    out, stats = margin_shift(adv, mask, correct, groups, delta=0.4, mode="mean")
    assert torch.equal(out[:4], adv[:4])  # one-outcome groups untouched
    assert torch.equal(out[6], adv[6])  # the ungraded rollout is neither side
    g = distillation_returns(out, mask)
    assert g[4] - g[5] == pytest.approx(0.4)  # its 0.9 did not enter the incorrect mean
    assert (stats.units, stats.mixed, stats.calibrated) == (3, 1, 1)


def test_global_scope_pools_the_batch():
    returns = [-0.2, 0.0, 0.1, -0.2]  # group 0: C -0.2, W 0.0; group 1: C 0.1, W -0.2
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 1, 1])
    adv, mask = rollouts(returns)
    _, per_group = margin_shift(adv, mask, correct, groups, delta=0.4, mode="mean", scope="group")
    out, pooled = margin_shift(adv, mask, correct, groups, delta=0.4, mode="mean", scope="global")
    assert (per_group.units, per_group.calibrated) == (2, 2)
    # pooled: C mean -0.05, W mean -0.1, gap 0.05 -> one shift of 0.35 for the whole batch
    assert (pooled.units, pooled.calibrated) == (1, 1)
    assert pooled.mean_shift == pytest.approx(0.35)
    shift = distillation_returns(out, mask) - distillation_returns(adv, mask)
    torch.testing.assert_close(shift, torch.tensor([0.175, -0.175, 0.175, -0.175]))


def test_minmax_shift_makes_every_mixed_group_order_consistent():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        N, G = 64, 8
        adv = torch.randn(N, 12, generator=g)
        mask = (torch.rand(N, 12, generator=g) < 0.8).float()
        mask[:, 0] = 1
        correct = (torch.rand(N, generator=g) < 0.5).float()
        correct[torch.rand(N, generator=g) < 0.1] = NAN
        groups = torch.arange(N // G).repeat_interleave(G)
        before = order_consistency(distillation_returns(adv, mask), correct, groups)
        out, _ = margin_shift(
            adv, mask, correct, groups, delta=0.1, mode="minmax", direction="both"
        )
        after = order_consistency(distillation_returns(out, mask), correct, groups)
        assert before.fraction < 1.0
        assert after.fraction == 1.0 and after.pairs == before.pairs
        assert after.mean_gap > before.mean_gap


def test_order_consistency_counts_pairs_within_groups_only():
    returns = torch.tensor([0.3, 0.1, 0.2, -1.0, 5.0])
    correct = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 0, 1, 1])
    oc = order_consistency(returns, correct, groups)
    # group 0: (0.3 vs 0.1) ordered, (0.3 vs 0.2) ordered; group 1: (-1 vs 5) not
    assert oc.pairs == 3 and oc.fraction == pytest.approx(2 / 3)
    assert oc.mean_gap == pytest.approx((0.2 + 0.1 - 6.0) / 3)
    assert order_consistency(returns, torch.ones(5), groups).fraction is None


def test_group_level_order_compares_worst_correct_with_best_incorrect():
    # group 0: correct {0.3, 0.0}, incorrect {0.1, -0.2}: pairs 3 of 4 ordered, but the worst
    # correct (0.0) is below the best incorrect (0.1), so the group is not ordered; group 1:
    # correct {0.5}, incorrect {0.5, -1}: a tie counts as ordered; group 2 has one outcome only
    returns = torch.tensor([0.3, 0.0, 0.1, -0.2, 0.5, 0.5, -1.0, 9.0, 9.0])
    correct = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2])
    oc = order_consistency(returns, correct, groups)
    assert (oc.pairs, oc.fraction) == (6, pytest.approx(5 / 6))
    assert (oc.groups, oc.group_fraction) == (2, 0.5)
    # a rollout left out (NaN) is in no pair and no group end: without the 0.0 rollout,
    # group 0's worst correct is 0.3 and the group is ordered
    correct[1] = NAN
    assert order_consistency(returns, correct, groups).group_fraction == 1.0


def test_margin_mask_drops_the_rollouts_that_break_the_order():
    # correct {0.0, -0.5, 0.1}, incorrect {-0.2, 0.3}: mean gap (-0.133) - (0.05) < 0.1
    returns = [0.0, -0.5, 0.1, -0.2, 0.3]
    correct = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    adv, mask = rollouts(returns)
    out, dropped, stats = margin_mask(
        adv,
        mask,
        correct,
        torch.zeros(5, dtype=torch.long),
        delta=0.1,
        mode="mean",
        min_retain_ratio=0.25,
    )
    # dropping the -0.5 correct gives gap 0.05 - 0.05 = 0.0; dropping the 0.3 incorrect gives
    # -0.133 + 0.2 = 0.067: drop the incorrect one first; then only the correct side may shrink
    # (one incorrect left): dropping -0.5 gives 0.05 + 0.2 = 0.25 >= 0.1, stop.
    assert dropped.tolist() == [False, True, False, False, True]
    assert torch.equal(out[dropped], torch.zeros_like(out[dropped]))
    assert torch.equal(out[~dropped], adv[~dropped])
    assert (stats.mixed, stats.calibrated, stats.mean_shift) == (1, 1, 2.0)


def test_margin_mask_respects_the_min_retain_limit():
    # every correct rollout below every incorrect one: the mask may only thin each side down to
    # max(1, floor(0.5 * 4)) = 2 rollouts
    returns = [-0.9, -0.8, -0.7, -0.6, 0.6, 0.7, 0.8, 0.9]
    correct = torch.tensor([1.0] * 4 + [0.0] * 4)
    adv, mask = rollouts(returns)
    _, dropped, _ = margin_mask(
        adv,
        mask,
        correct,
        torch.zeros(8, dtype=torch.long),
        delta=0.4,
        mode="minmax",
        min_retain_ratio=0.5,
    )
    assert int(dropped[:4].sum()) == 2 and int(dropped[4:].sum()) == 2
    assert dropped[:2].all() and dropped[6:].all()  # the worst offenders of each side


def test_margin_mask_leaves_one_outcome_groups_and_wide_gaps():
    returns = [0.1, 0.2, 0.9, -0.9]
    correct = torch.tensor([1.0, 1.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 1, 1])
    adv, mask = rollouts(returns)
    out, dropped, stats = margin_mask(adv, mask, correct, groups, delta=0.4, mode="mean")
    assert not dropped.any() and torch.equal(out, adv) and (stats.mixed, stats.calibrated) == (1, 0)


def test_bad_arguments_are_refused():
    adv, mask = rollouts(EXAMPLE)
    with pytest.raises(ValueError, match="mode"):
        margin_shift(adv, mask, CORRECT, ONE_GROUP, delta=0.4, mode="median")
    with pytest.raises(ValueError, match="direction"):
        margin_shift(adv, mask, CORRECT, ONE_GROUP, delta=0.4, direction="sideways")
    with pytest.raises(ValueError, match="delta"):
        margin_shift(adv, mask, CORRECT, ONE_GROUP, delta=-0.1)
    with pytest.raises(ValueError, match="scope"):
        margin_mask(adv, mask, CORRECT, ONE_GROUP, delta=0.4, scope="batch")
    assert not math.isnan(float(margin_shift(adv, mask, CORRECT, ONE_GROUP, 0.0)[0].sum()))
