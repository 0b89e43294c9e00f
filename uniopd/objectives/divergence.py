"""Full-vocabulary divergences on the student's own rollouts (METHOD 7, GKD as in TRL).

Direct differentiable losses: the teacher's whole next-token distribution at every response
position, computed one micro-batch at a time inside the update (never for the whole batch). GKD's
lambda, the share of on-policy batches, is 1 here: every batch is the student's own rollouts.
"""

from __future__ import annotations

import torch
from pydantic import Field

from uniopd.algorithms import generalized_jsd
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.base import Need, NoOptions, Objective, Signals


class JSDOptions(NoOptions):
    beta: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Mixture weight: 0 = forward KL(T||S), 1 = reverse KL(S||T).",
    )
    temperature: float = Field(
        default=1.0, gt=0, description="Both distributions are softmax(logits / T)."
    )


class _Divergence(Objective):
    kind = "loss"
    beta: float | None = None  # fixed by the named endpoints, else from the options

    def needs(self):
        return frozenset({Need.TEACHER_LOGITS})

    def loss(self, s: Signals, student_logits_N_T_V):
        beta = self.options.beta if self.beta is None else self.beta
        teacher = s.need("teacher_logits_N_T_V")
        finite = torch.isfinite(teacher).all(-1)  # a failed teacher call: those rows leave the loss
        per_token = generalized_jsd(
            student_logits_N_T_V, torch.nan_to_num(teacher), beta, self.options.temperature
        )
        return per_token, s.mask_N_T * finite.to(s.mask_N_T.dtype)


@OBJECTIVES.register("jsd")
class JSD(_Divergence):
    """Generalised JSD(beta) over the full vocabulary, as a direct loss (GKD)."""

    label = "JSD"
    Options = JSDOptions


class _EndpointOptions(NoOptions):
    temperature: float = Field(
        default=1.0, gt=0, description="Both distributions are softmax(logits / T)."
    )


@OBJECTIVES.register("forward_kl")
class ForwardKL(_Divergence):
    """Forward KL(teacher || student) over the full vocabulary (JSD at beta = 0)."""

    label = "forward KL"
    Options = _EndpointOptions
    beta = 0.0


@OBJECTIVES.register("reverse_kl")
class ReverseKL(_Divergence):
    """Reverse KL(student || teacher) over the full vocabulary (JSD at beta = 1)."""

    label = "reverse KL"
    Options = _EndpointOptions
    beta = 1.0
