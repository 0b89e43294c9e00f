"""METHOD 2: PPO clip with asymmetric epsilons, the teacher gap mask, and the loss reduction."""

import math

import torch

from uniopd.algorithms import ppo_clip_loss


def test_reduction_is_per_rollout_token_mean_then_mean_over_all_slots():
    logp = torch.zeros(3, 4)
    adv = torch.tensor([[1.0, 1.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    loss, _ = ppo_clip_loss(logp, logp, adv, mask)
    # rho == 1: rollout losses are -1 and -2; the masked-out third rollout keeps its slot in N = 3
    assert math.isclose(loss.item(), (-1.0 - 2.0 + 0.0) / 3, rel_tol=1e-6)


def test_asymmetric_clipping():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5]]))  # rho
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    loss, stats = ppo_clip_loss(logp, old, adv, torch.ones(1, 4), clip_low=0.2, clip_high=0.28)
    # A>0, rho=1.5: clipped at 1.28 -> -1.28; A<0, rho=1.5: max(1.5, 1.28) -> 1.5;
    # A>0, rho=0.5: max(-0.5, -0.8) -> -0.5; A<0, rho=0.5: max(0.5, 0.8) -> 0.8
    expected = (-1.28 + 1.5 - 0.5 + 0.8) / 4
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    assert math.isclose(stats["clip_frac"], 0.5)


def test_clip_kills_gradient_outside_trust_region():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_()
    loss, _ = ppo_clip_loss(logp, old, torch.ones(1, 2), torch.ones(1, 2))
    loss.backward()
    assert logp.grad[0, 0] == 0  # rho = 1.5 > 1.28 with A > 0: clipped, no gradient
    assert logp.grad[0, 1] != 0


def test_teacher_gap_mask_zeroes_far_tokens_but_keeps_denominator():
    logp = torch.tensor([[-1.0, -1.0]])
    teacher = torch.tensor([[-20.0, -1.5]])  # first token |gap| = 19 >= c = 10
    adv = torch.tensor([[3.0, 2.0]])
    loss, stats = ppo_clip_loss(
        logp, logp, adv, torch.ones(1, 2), teacher_logp=teacher, gap_threshold=10.0
    )
    assert math.isclose(loss.item(), -2.0 / 2)
    assert math.isclose(stats["gap_masked_frac"], 0.5)


def test_micro_batches_sum_to_the_full_batch_loss():
    torch.manual_seed(0)
    logp, old, adv = torch.randn(6, 5), torch.randn(6, 5), torch.randn(6, 5)
    mask = (torch.rand(6, 5) > 0.3).float()
    full, _ = ppo_clip_loss(logp, old, adv, mask)
    parts = sum(
        ppo_clip_loss(
            logp[i : i + 2], old[i : i + 2], adv[i : i + 2], mask[i : i + 2], num_rollouts=6
        )[0]
        for i in range(0, 6, 2)
    )
    assert torch.allclose(full, parts)
