"""Reward extrapolation for on-policy distillation (G-OPD / ExOPD).

OPD's sampled-token advantage log piT - log pi_theta can be read, relative to a reference policy
pi_ref (the student at initialisation, say), as an implicit reward r = log piT - log pi_ref
minus the KL-style penalty log pi_theta - log pi_ref. G-OPD scales that reward by lambda:
    A_t = -[(log pi_theta - log pi_ref) - lambda * (log piT - log pi_ref)].
lambda = 1 is plain OPD (pi_ref cancels), lambda = 0 pulls the student back to pi_ref, and
lambda > 1 extrapolates past the teacher along the direction the teacher improved on pi_ref.

Shapes: `[N, T]` per-token log-probs of the sampled tokens, mask 1 on real response tokens.
"""

from __future__ import annotations

import torch

from uniopd.algorithms.advantages import opd_advantages


def exopd_advantages(
    teacher_logp_N_T: torch.Tensor,
    student_logp_N_T: torch.Tensor,
    reference_logp_N_T: torch.Tensor,
    mask_N_T: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """A = -[(log pi_theta - log pi_ref) - lam * (log piT - log pi_ref)], detached, `[N, T]`.

    Computed as the OPD advantage plus (lam - 1) times the teacher's reward over pi_ref, which is
    the same quantity rearranged so that lam = 1 reproduces `opd_advantages` bit for bit (the
    pi_ref terms are multiplied by exactly 0 rather than cancelled in floating point). A position
    where any of the three log-probs is not finite gets advantage 0, as in `opd_advantages`; note
    that `opd_loss_mask` looks only at teacher and student, so a non-finite reference log-prob
    leaves its position in the loss mask with advantage 0.
    """
    finite = (
        torch.isfinite(teacher_logp_N_T)
        & torch.isfinite(student_logp_N_T)
        & torch.isfinite(reference_logp_N_T)
    )
    opd = opd_advantages(teacher_logp_N_T, student_logp_N_T, mask_N_T)
    # zero the reward where pi_ref is missing before multiplying: (lam - 1) * inf would be nan
    reward = torch.where(
        finite, teacher_logp_N_T - reference_logp_N_T, torch.zeros_like(teacher_logp_N_T)
    )
    adv = opd + (lam - 1.0) * reward * mask_N_T
    return torch.where(finite, adv, torch.zeros_like(adv)).detach()
