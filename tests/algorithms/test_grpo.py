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


def test_objective_normalises_whole_groups_when_given_a_slice_of_rows():
    # a micro-batch holding one rollout of a group must still get that rollout's advantage
    # within its whole group, not 0 from a group of one
    from uniopd.objectives import OBJECTIVES, Signals

    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1])
    full = grpo_advantages(rewards, groups)
    one = torch.ones(1, 3)
    signals = Signals(
        rows=torch.tensor([0]),
        mask_N_T=one,
        student_logp_N_T=one,
        response_ids_N_T=one.long(),
        rewards_N=rewards,
        group_ids_N=groups,
    )
    adv, _ = OBJECTIVES.get("grpo")().advantages(signals)
    assert full[0] > 0.9
    assert torch.allclose(adv, torch.full((1, 3), float(full[0])))
