"""METHOD 5: GRPO's group-normalised outcome advantage."""

import pytest
import torch

from uniopd.algorithms import grpo_advantages


def test_group_normalisation_uses_the_unbiased_std_by_default_as_released():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    adv = grpo_advantages(rewards, groups, eps=0.0)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std(unbiased=True)  # the release's (n - 1)
    assert torch.allclose(adv[:4], (torch.tensor([1.0, 0, 0, 0]) - 0.25) / std)
    assert torch.equal(adv[4:], torch.zeros(2))  # all-correct group: no signal
    population = grpo_advantages(rewards, groups, eps=0.0, unbiased=False)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std(unbiased=False)
    assert torch.allclose(population[:4], (torch.tensor([1.0, 0, 0, 0]) - 0.25) / std)
    # a group of one rollout: no signal, not NaN (the unbiased std of one value is undefined)
    assert torch.equal(grpo_advantages(torch.tensor([1.0]), torch.tensor([0])), torch.zeros(1))


def test_the_objective_std_field_selects_the_estimator():
    from uniopd.config.method import MethodConfig
    from uniopd.objectives import Signals

    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    groups = torch.zeros(4, dtype=torch.long)
    one = torch.ones(4, 1)
    signals = Signals(
        rows=torch.arange(4),
        mask_N_T=one,
        student_logp_N_T=one,
        response_ids_N_T=one.long(),
        rewards_N=rewards,
        group_ids_N=groups,
    )
    values = {}
    for std in ("unbiased", "population"):
        method = MethodConfig.model_validate({"name": "grpo", "options": {"grpo": {"std": std}}})
        (_, _, objective), *_ = method.objectives()
        values[std] = float(objective.advantages(signals)[0][0, 0])
    assert MethodConfig(name="grpo").objectives()[0][2].options.std == "unbiased"
    assert values["unbiased"] == pytest.approx(0.75 / 0.5, rel=1e-5)  # std(1,0,0,0; n-1) = 0.5
    assert values["population"] / values["unbiased"] == pytest.approx((4 / 3) ** 0.5, rel=1e-5)


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
    assert full[0] == pytest.approx(0.5 / 0.5**0.5, rel=1e-5)  # (1 - 0.5) / unbiased std
    assert torch.allclose(adv, torch.full((1, 3), float(full[0])))
