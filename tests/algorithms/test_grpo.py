"""METHOD 5: GRPO's group-normalised outcome advantage."""

import torch

from uniopd.algorithms import grpo_advantages


def test_group_normalisation():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    adv = grpo_advantages(rewards, groups, eps=0.0)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std(unbiased=False)
    assert torch.allclose(adv[:4], (torch.tensor([1.0, 0, 0, 0]) - 0.25) / std)
    assert torch.equal(adv[4:], torch.zeros(2))  # all-correct group: no signal


def test_ungraded_counts_as_zero_reward():
    adv = grpo_advantages(torch.tensor([1.0, float("nan")]), torch.tensor([3, 3]))
    assert adv[0] > 0 and adv[1] < 0
