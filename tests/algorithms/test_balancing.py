"""Online correctness-aware balancing (METHOD 3.2) and offline difficulty balancing (METHOD 3.1)."""

from collections import Counter

import pytest
import torch

from uniopd.algorithms import difficulty_balance, difficulty_bins, online_balance

NAN = float("nan")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- online balancing
def test_twelve_correct_four_wrong_keeps_four_and_four():
    correct = torch.tensor([1.0] * 12 + [0.0] * 4)
    keep = online_balance(correct, torch.zeros(16, dtype=torch.long), ratio=1.0, generator=gen())
    assert int(keep[:12].sum()) == 4 and keep[12:].all()


def test_minority_correct_masks_incorrect():
    correct = torch.tensor([1.0] * 3 + [0.0] * 13)
    keep = online_balance(correct, torch.zeros(16, dtype=torch.long), ratio=1.0, generator=gen())
    assert keep[:3].all() and int(keep[3:].sum()) == 3


@pytest.mark.parametrize(
    "ratio, n_c, n_w", [(0.5, 12, 4), (2.0, 12, 4), (1.5, 4, 12), (0.75, 10, 6)]
)
def test_ratios_follow_the_floor_rule(ratio, n_c, n_w):
    correct = torch.tensor([1.0] * n_c + [0.0] * n_w)
    keep = online_balance(
        correct, torch.zeros(n_c + n_w, dtype=torch.long), ratio=ratio, generator=gen()
    )
    want_c, want_w = int(n_w * ratio), int(n_c / ratio)
    if n_c > want_c >= 1:
        expected = (want_c, n_w)
    elif n_w > want_w >= 1:
        expected = (n_c, want_w)
    else:
        expected = (n_c, n_w)
    assert (int(keep[:n_c].sum()), int(keep[n_c:].sum())) == expected


def test_one_outcome_groups_are_untouched_and_nan_counts_as_incorrect():
    correct = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, NAN, 0.0, 1.0, 1.0, 1.0, NAN])
    groups = torch.arange(3).repeat_interleave(4)
    keep = online_balance(correct, groups, ratio=1.0, generator=gen())
    assert keep[:8].all()
    # group 2: three correct, one ungraded (= incorrect) -> keep 1 + 1
    assert int(keep[8:11].sum()) == 1 and keep[11]


def test_extreme_ratios_drop_one_side_of_every_group_one_outcome_groups_included():
    # as released: the r = 0 / inf check comes before the one-outcome skip, so the all-correct
    # group 1 loses every rollout at r = 0 and the all-wrong group 2 every rollout at r = inf
    correct = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, float("nan")])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    at_zero = online_balance(correct, groups, 0.0).tolist()
    assert at_zero == [False, False, True, True, False, False, True, True]
    at_inf = online_balance(correct, groups, float("inf")).tolist()
    assert at_inf == [True, True, False, False, True, True, False, False]
    for scope in ("group", "global"):
        assert online_balance(correct, groups, 0.0, scope).tolist() == at_zero
        assert online_balance(correct, groups, float("inf"), scope).tolist() == at_inf


def test_global_scope_balances_the_whole_batch():
    # per group 2:2 and 4:0 look balanced / untouched; pooled 6:2 is not
    correct = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert online_balance(correct, groups, 1.0, "group").all()
    keep = online_balance(correct, groups, 1.0, "global", generator=gen())
    assert int(keep[correct == 1].sum()) == 2 and keep[correct == 0].all()


def test_seeded_and_reproducible():
    correct = (torch.rand(256, generator=gen(1)) < 0.7).float()
    groups = torch.arange(16).repeat_interleave(16)
    a = online_balance(correct, groups, 1.0, generator=gen(5))
    b = online_balance(correct, groups, 1.0, generator=gen(5))
    c = online_balance(correct, groups, 1.0, generator=gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="ratio"):
        online_balance(correct, groups, -1.0)


# ----------------------------------------------------------------------------- offline balancing
# n = 4 samples per prompt: 10 prompts never solved, 3 solved once, 2 solved twice, none three
# times, 6 always solved. Largest bin: 10.
COUNTS = [0] * 10 + [1] * 3 + [2] * 2 + [4] * 6


def copies(indices):
    per_prompt = Counter(indices)
    return {c: sum(per_prompt[i] for i, x in enumerate(COUNTS) if x == c) for c in set(COUNTS)}


def test_upsampling_rule_flat_target():
    out = difficulty_balance(COUNTS, 4, ratio=1.0, mode="balance", generator=gen())
    # extremes kept once; bin c=1 (3 prompts) -> target 10: 3 whole copies + 1 drawn;
    # bin c=2 (2 prompts) -> 5 whole copies
    assert copies(out) == {0: 10, 1: 10, 2: 10, 4: 6}
    per_prompt = Counter(out)
    assert sorted(per_prompt[i] for i in (10, 11, 12)) == [3, 3, 4]
    assert all(per_prompt[i] == 5 for i in (13, 14))
    assert set(out) == set(range(len(COUNTS)))  # no prompt filtered


def test_upsampling_rule_ratio_and_reference():
    half = difficulty_balance(COUNTS, 4, ratio=0.5, generator=gen())
    assert copies(half) == {0: 10, 1: 5, 2: 5, 4: 6}  # target ceil(0.5 * 10) = 5
    ext = difficulty_balance(COUNTS, 4, ratio=1.0, reference="extremes", generator=gen())
    assert copies(ext) == {0: 10, 1: 8, 2: 8, 4: 6}  # n_ref = (10 + 6) / 2 = 8
    mean = difficulty_balance(COUNTS, 4, ratio=1.0, reference="mean", generator=gen())
    assert copies(mean) == {0: 10, 1: 6, 2: 6, 4: 6}  # n_ref = 21 / 4 bins = 5.25 -> 6


def test_repeat_cap_and_mid_range():
    counts = [0] * 20 + [2]  # one mid prompt, target 20: capped at 8 copies
    assert Counter(difficulty_balance(counts, 4, generator=gen()))[20] == 8
    assert Counter(difficulty_balance(counts, 4, max_repeats=3, generator=gen()))[20] == 3
    # mid_high = 0.4 leaves p = 0.5 out of the mid range: nothing upsampled
    assert Counter(difficulty_balance(counts, 4, mid_high=0.4, generator=gen()))[20] == 1


def test_filtering_baselines_and_none():
    assert sorted(difficulty_balance(COUNTS, 4, mode="none", generator=gen())) == list(range(21))
    no_easy = difficulty_balance(COUNTS, 4, mode="drop_all_correct", generator=gen())
    no_hard = difficulty_balance(COUNTS, 4, mode="drop_all_wrong", generator=gen())
    assert sorted(no_easy) == list(range(15)) and sorted(no_hard) == list(range(10, 21))


def test_width_bins_keep_the_extremes_apart():
    assert difficulty_bins([0, 1, 3, 4, 7, 8], 8, bins="width", num_bins=2) == [0, 1, 1, 2, 2, 3]
    assert difficulty_bins([0, 3], 8) == [0, 3]


def test_shuffled_and_seeded():
    a = difficulty_balance(COUNTS, 4, generator=gen(1))
    assert a == difficulty_balance(COUNTS, 4, generator=gen(1))
    assert a != sorted(a)
    with pytest.raises(ValueError, match="ratio"):
        difficulty_balance(COUNTS, 4, ratio=0.0)
    with pytest.raises(ValueError, match="pass counts"):
        difficulty_balance([5], 4)
