"""G-OPD / ExOPD: the reward-extrapolated OPD advantage."""

import pytest
import torch

from uniopd.algorithms import exopd_advantages, opd_advantages


def _logps(seed, shape=(4, 7)):
    g = torch.Generator().manual_seed(seed)
    teacher, student, ref = (-torch.rand(shape, generator=g) * 6 for _ in range(3))
    mask = (torch.rand(shape, generator=g) > 0.2).float()
    return teacher, student, ref, mask


def test_lambda_one_is_opd_bit_for_bit():
    teacher, student, ref, mask = _logps(0)
    assert torch.equal(
        exopd_advantages(teacher, student, ref, mask, 1.0), opd_advantages(teacher, student, mask)
    )


def test_non_finite_teacher_or_student_handled_as_opd_does():
    teacher, student, ref, mask = _logps(1)
    teacher[0, 0], student[1, 1], student[2, 2] = float("-inf"), float("nan"), float("inf")
    mask[:3] = 1.0
    got = exopd_advantages(teacher, student, ref, mask, 1.0)
    assert torch.equal(got, opd_advantages(teacher, student, mask))
    assert got[0, 0] == got[1, 1] == got[2, 2] == 0
    assert (exopd_advantages(teacher, student, ref, mask, 2.5)[[0, 1, 2], [0, 1, 2]] == 0).all()


@pytest.mark.parametrize("lam", [0.0, 1.0, 2.5])
def test_non_finite_reference_gives_zero_advantage(lam):
    # stricter than opd_advantages, which never looks at the reference: any bad log-prob zeroes
    teacher, student, ref, mask = _logps(2)
    mask[:] = 1.0
    ref[3, 3] = float("-inf")
    got = exopd_advantages(teacher, student, ref, mask, lam)
    assert torch.isfinite(got).all() and got[3, 3] == 0 and (got != 0).sum() == got.numel() - 1


def test_lambda_zero_pulls_to_the_reference():
    teacher, student, ref, mask = _logps(4)
    torch.testing.assert_close(
        exopd_advantages(teacher, student, ref, mask, 0.0),
        (ref - student) * mask,
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("lam", [-1.0, 0.5, 2.5])
def test_linear_in_lambda(lam):
    teacher, student, ref, mask = _logps(3)
    a0, a1 = (exopd_advantages(teacher, student, ref, mask, x) for x in (0.0, 1.0))
    expected = a0 + lam * (a1 - a0)
    got = exopd_advantages(teacher, student, ref, mask, lam)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert (got * (1 - mask) == 0).all() and not got.requires_grad
