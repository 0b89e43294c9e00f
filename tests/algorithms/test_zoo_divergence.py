"""GKD's generalised JSD, per token, against TRL's GKDTrainer.generalized_jsd_loss (TRL 1.16)."""

import os

import pytest
import torch

from uniopd.algorithms import generalized_jsd


def _gkd_trainer():
    """TRL's GKDTrainer, a hard dependency of the test extra (no importorskip). Imported by the
    tests that compare against it, which are in the slow tier: importing TRL (and peft with it)
    takes about 3 s, a twentieth of the quick tier."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.gkd import GKDTrainer

    return GKDTrainer


BETAS = [0.0, 0.3, 0.5, 1.0]


def _logits(seed, shape=(3, 5, 11), scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


@pytest.mark.slow  # imports TRL
@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("beta", BETAS)
def test_matches_trl_per_token_and_masked_sum(beta, temperature):
    GKDTrainer = _gkd_trainer()
    s, t = _logits(0), _logits(1)
    ours = generalized_jsd(s, t, beta, temperature)
    trl = GKDTrainer.generalized_jsd_loss(
        s, t, beta=beta, temperature=temperature, reduction="none"
    )
    assert ours.shape == (3, 5)
    torch.testing.assert_close(ours, trl.sum(-1), rtol=0, atol=1e-5)
    # TRL's own masking: labels == -100 drop a position; "sum" then matches our masked sum
    labels = torch.zeros(3, 5, dtype=torch.long)
    labels[0, 3:] = labels[2, 0] = -100
    trl_sum = GKDTrainer.generalized_jsd_loss(
        s, t, labels=labels, beta=beta, temperature=temperature, reduction="sum"
    )
    torch.testing.assert_close((ours * (labels != -100)).sum(), trl_sum, rtol=0, atol=1e-5)


@pytest.mark.slow  # imports TRL
@pytest.mark.parametrize("beta", BETAS)
def test_student_gradient_matches_trl(beta):
    GKDTrainer = _gkd_trainer()
    s, t = _logits(2), _logits(3)
    ours_s, trl_s = s.clone().requires_grad_(), s.clone().requires_grad_()
    generalized_jsd(ours_s, t, beta).sum().backward()
    GKDTrainer.generalized_jsd_loss(trl_s, t, beta=beta, reduction="sum").backward()
    assert ours_s.grad.abs().max() > 1e-3
    torch.testing.assert_close(ours_s.grad, trl_s.grad, rtol=0, atol=1e-8)


def test_endpoints_are_the_two_kls_and_middle_is_the_mixture_formula():
    s, t = _logits(4), _logits(5)
    ps, pt = torch.softmax(s, -1), torch.softmax(t, -1)
    forward = (pt * (pt.log() - ps.log())).sum(-1)
    reverse = (ps * (ps.log() - pt.log())).sum(-1)
    torch.testing.assert_close(generalized_jsd(s, t, 0.0), forward, rtol=0, atol=1e-10)
    torch.testing.assert_close(generalized_jsd(s, t, 1.0), reverse, rtol=0, atol=1e-10)
    assert (forward - reverse).abs().max() > 0.1  # the endpoints really are different objectives
    b = 0.3
    m = b * pt + (1 - b) * ps
    jsd = b * (pt * (pt / m).log()).sum(-1) + (1 - b) * (ps * (ps / m).log()).sum(-1)
    torch.testing.assert_close(generalized_jsd(s, t, b), jsd, rtol=0, atol=1e-10)


@pytest.mark.parametrize("beta", BETAS)
def test_gradient_reaches_student_only_and_vanishes_at_the_teacher(beta):
    s = _logits(6).requires_grad_()
    t = _logits(7).requires_grad_()
    generalized_jsd(s, t, beta).sum().backward()
    assert s.grad.abs().max() > 1e-3 and t.grad is None
    same = t.detach().clone().requires_grad_()
    value = generalized_jsd(same, t.detach(), beta)
    value.sum().backward()
    assert value.abs().max() < 1e-12 and same.grad.abs().max() < 1e-12
