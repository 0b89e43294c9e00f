"""METHOD 2: the sampled-token reverse-KL advantage and its gradient."""

import torch

from uniopd.algorithms import distillation_returns, opd_advantages, opd_loss_mask, ppo_clip_loss


def _policy_gradient(theta, teacher_logp_V, n_samples, advantage_fn, seed=0):
    """Monte Carlo gradient of the OPD loss for a one-position policy softmax(theta)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(theta.detach(), -1)
    tokens = torch.multinomial(probs, n_samples, replacement=True, generator=g)
    logp = torch.log_softmax(theta, -1)[tokens][:, None]  # [N, T=1]
    adv = advantage_fn(tokens, logp.detach())
    loss, _ = ppo_clip_loss(logp, logp.detach(), adv, torch.ones_like(logp))
    (grad,) = torch.autograd.grad(loss, theta)
    return grad


def test_student_equal_teacher_gives_zero_advantage_and_zero_gradient():
    theta = torch.randn(16, requires_grad=True)
    teacher = torch.log_softmax(theta.detach(), -1)
    grad = _policy_gradient(
        theta,
        teacher,
        4096,
        lambda tok, old: opd_advantages(teacher[tok][:, None], old, torch.ones_like(old)),
    )
    assert torch.count_nonzero(grad) == 0


def test_expected_gradient_matches_reverse_kl_gradient():
    torch.manual_seed(0)
    theta = torch.randn(8, requires_grad=True)
    teacher = torch.log_softmax(torch.randn(8) * 2, -1)
    grad = _policy_gradient(
        theta,
        teacher,
        400_000,
        lambda tok, old: opd_advantages(teacher[tok][:, None], old, torch.ones_like(old)),
    )
    # minimising the loss must follow the exact reverse KL(pi || piT): same gradient in expectation
    logp = torch.log_softmax(theta, -1)
    kl = (logp.exp() * (logp - teacher)).sum()
    (exact,) = torch.autograd.grad(kl, theta)
    assert exact.norm() > 0.1
    cos = torch.nn.functional.cosine_similarity(grad, exact, dim=0)
    assert cos > 0.995
    assert (grad - exact).norm() / exact.norm() < 0.06


def test_token_independent_advantage_has_zero_expected_gradient():
    # The bug METHOD 2 warns about: an advantage that does not depend on the sampled token (here
    # the exact KL as a constant) has zero expected policy gradient. Our test above would catch it.
    torch.manual_seed(0)
    theta = torch.randn(8, requires_grad=True)
    teacher = torch.log_softmax(torch.randn(8) * 2, -1)
    logp = torch.log_softmax(theta.detach(), -1)
    constant = -(logp.exp() * (logp - teacher)).sum()
    grad = _policy_gradient(
        theta, teacher, 400_000, lambda tok, old: torch.full_like(old, float(constant))
    )
    kl = (torch.log_softmax(theta, -1).exp() * (torch.log_softmax(theta, -1) - teacher)).sum()
    (exact,) = torch.autograd.grad(kl, theta)
    assert grad.norm() < 0.05 * exact.norm()


def test_non_finite_teacher_positions_get_zero_advantage_and_mask():
    teacher = torch.tensor([[-1.0, float("nan"), -2.0], [float("-inf"), -0.5, -0.1]])
    student = torch.tensor([[-0.5, -0.5, -0.5], [-0.3, -0.3, -0.3]])
    adv = opd_advantages(teacher, student, torch.ones(2, 3))
    mask = opd_loss_mask(teacher, student, torch.ones(2, 3))
    assert torch.equal(mask, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    assert torch.allclose(adv, torch.tensor([[-0.5, 0.0, -1.5], [0.0, -0.2, 0.2]]))


def test_distillation_return_is_token_mean():
    adv = torch.tensor([[1.0, 2.0, 3.0, 99.0], [-1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(distillation_returns(adv, mask), torch.tensor([2.0, -1.0]))
