"""Top-K local support matching: the truncated reverse KL and the special-token mask."""

import pytest
import torch

from uniopd.algorithms import (
    first_occurrence_special_mask,
    generalized_jsd,
    teacher_topk,
    topk_support_loss,
)


def _logits(seed, shape=(2, 4, 10), scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


def _naive(student_logits, teacher_logits, k, sampled, clamp):
    """One position at a time, from full softmaxes and Python sets: an independent reference."""
    n_rows, n_cols, _ = student_logits.shape
    out = torch.zeros(n_rows, n_cols, dtype=student_logits.dtype)
    for n in range(n_rows):
        for t in range(n_cols):
            p = torch.softmax(student_logits[n, t], -1)
            q = torch.softmax(teacher_logits[n, t], -1)
            support = sorted(q.argsort(descending=True)[:k].tolist())
            if sampled is not None and int(sampled[n, t]) not in support:
                support.append(int(sampled[n, t]))
            p_bar = p[support] / p[support].sum()
            q_bar = q[support] / q[support].sum()
            ratio = (p_bar / q_bar).log()
            if clamp is not None:
                ratio = ratio.clamp(-clamp, clamp)
            out[n, t] = (p_bar * ratio).sum()
    return out


def test_full_support_without_clamp_is_the_full_reverse_kl():
    s, t = _logits(0), _logits(1)
    logq, ids = teacher_topk(t, k=10)
    loss = topk_support_loss(s, logq, ids, clamp=None)
    torch.testing.assert_close(loss, generalized_jsd(s, t, beta=1.0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("clamp", [None, 0.5])
def test_matches_naive_loop_with_sampled_token_tail(clamp):
    s, t = _logits(2), _logits(3)
    logq, ids = teacher_topk(t, k=3)
    sampled = torch.randint(0, 10, (2, 4), generator=torch.Generator().manual_seed(4))
    sampled[0, 0] = ids[0, 0, 1]  # one sampled token already in S_t: it must not be counted twice
    outside = ~(ids == sampled[..., None]).any(-1)
    assert outside.any() and (~outside).any()
    teacher_sampled = torch.log_softmax(t, -1).gather(-1, sampled[..., None])[..., 0]
    ours_s, ref_s = s.clone().requires_grad_(), s.clone().requires_grad_()
    ours = topk_support_loss(
        ours_s,
        logq,
        ids,
        sampled_ids_N_T=sampled,
        teacher_sampled_logp_N_T=teacher_sampled,
        clamp=clamp,
    )
    ref = _naive(ref_s, t, 3, sampled, clamp)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    ours.sum().backward()
    ref.sum().backward()
    assert ours_s.grad.abs().max() > 1e-3
    torch.testing.assert_close(ours_s.grad, ref_s.grad, rtol=0, atol=1e-10)


def test_clamp_bounds_the_loss():
    s, t = _logits(5, scale=20.0), _logits(6, scale=20.0)
    logq, ids = teacher_topk(t, k=5)
    assert topk_support_loss(s, logq, ids, clamp=None).abs().max() > 3.0  # the clamp must bite
    clamped = topk_support_loss(s, logq, ids, clamp=1.0)
    assert clamped.abs().max() <= 1.0 + 1e-12


def test_zero_loss_and_zero_gradient_when_student_is_teacher():
    t = _logits(7)
    s = t.clone().requires_grad_()
    logq, ids = teacher_topk(t, k=3)
    sampled = torch.full((2, 4), 9)
    teacher_sampled = torch.log_softmax(t, -1)[..., 9]
    loss = topk_support_loss(
        s, logq, ids, sampled_ids_N_T=sampled, teacher_sampled_logp_N_T=teacher_sampled
    )
    loss.sum().backward()
    assert loss.abs().max() < 1e-12 and s.grad.abs().max() < 1e-12


def test_special_mask_zeroes_only_the_first_occurrence_in_each_row():
    ids = torch.tensor(
        [
            [5, 7, 1, 7, 2, 0],  # first special (7) at column 1, not column 3
            [3, 4, 8, 8, 7, 0],  # 8 comes before 7: column 2
            [3, 4, 5, 6, 1, 2],  # no special token: unchanged
            [7, 4, 8, 6, 0, 0],
        ]
    )  # column 0 is outside the mask: column 2
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]],
        dtype=torch.float32,
    )
    out = first_occurrence_special_mask(ids, [7, 8, 0], mask)
    expected = mask.clone()
    expected[0, 1] = expected[1, 2] = expected[3, 2] = 0.0
    assert torch.equal(out, expected)
