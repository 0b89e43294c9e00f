"""The difficulty-skew dial: the share of always- or never-solved prompts in the training list."""

import pytest
import torch

from uniopd.algorithms import difficulty_skew


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# n = 4 samples: 30 never solved, 10 always solved, 60 sometimes
COUNTS = [0] * 30 + [4] * 10 + [1, 2, 3] * 20


@pytest.mark.parametrize("skew", [0.1, 0.4, 0.8])
def test_the_list_has_the_asked_share_of_extremes(skew):
    picked = difficulty_skew(COUNTS, 4, skew, generator=gen())
    extremes = sum(COUNTS[i] in (0, 4) for i in picked)
    assert extremes / len(picked) == pytest.approx(skew, abs=1 / len(picked))
    assert picked == sorted(set(picked))
    # the largest list the pools allow (40 extremes, 60 mids)
    assert len(picked) == int(min(40 / skew, 60 / (1 - skew)) + 1e-9)


def test_a_fixed_size_makes_every_skew_the_same_length():
    sizes = {len(difficulty_skew(COUNTS, 4, s, size=40, generator=gen())) for s in (0.1, 0.5, 0.9)}
    assert sizes == {40}


def test_extremes_keep_their_natural_proportion_on_average():
    hard = []
    for seed in range(50):
        picked = difficulty_skew(COUNTS, 4, 0.5, size=40, generator=gen(seed))
        hard.append(sum(COUNTS[i] == 0 for i in picked) / sum(COUNTS[i] in (0, 4) for i in picked))
    assert sum(hard) / len(hard) == pytest.approx(0.75, abs=0.03)  # 30 of the 40 extremes


def test_a_list_the_pools_cannot_make_names_the_shortfall():
    with pytest.raises(ValueError, match="needs 72 always- or never-solved"):
        difficulty_skew(COUNTS, 4, 0.9, size=80)
    with pytest.raises(ValueError, match="skew must be in"):
        difficulty_skew(COUNTS, 4, 1.0)
    with pytest.raises(ValueError, match="leaves 0 and 60"):
        difficulty_skew([1, 2, 3] * 20, 4, 0.5)
