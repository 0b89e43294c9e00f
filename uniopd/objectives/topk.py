"""Top-K local support matching ("Revisiting On-Policy Distillation", METHOD 7).

The teacher's top-K tokens at each position are computed once per batch in the teacher phase
(K floats per token, not V); the loss renormalises both models over that support.
"""

from __future__ import annotations

import torch
from pydantic import Field

from uniopd.algorithms import first_occurrence_special_mask, topk_support_loss
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.base import Need, NoOptions, Objective, Signals


class TopKOptions(NoOptions):
    k: int = Field(default=32, ge=1, description="Size of the teacher's support S_t.")
    clamp: float | None = Field(
        default=5.0, gt=0, description="Clamp each log-ratio to +-clamp (None = off)."
    )
    sampled_tail: bool = Field(
        default=False, description="Add the sampled token to S_t when the teacher did not rank it."
    )
    mask_special_first: bool = Field(
        default=False, description="Drop the first special token of each response from the loss."
    )


@OBJECTIVES.register("topk")
class TopK(Objective):
    """Reverse KL renormalised over the teacher's top-K support, as a direct loss."""

    label = "top-K"
    kind = "loss"
    Options = TopKOptions

    def needs(self):
        extra = {Need.TEACHER_LOGP} if self.options.sampled_tail else set()
        return frozenset({Need.TEACHER_TOPK, *extra})

    def loss(self, s: Signals, student_logits_N_T_V):
        o = self.options
        topk_logp = s.need("teacher_topk_logp_N_T_K")
        finite = torch.isfinite(topk_logp).all(
            -1
        )  # a failed teacher call: those rows leave the loss
        sampled_logp = None
        if o.sampled_tail:
            teacher_logp = s.need("teacher_logp_N_T")
            finite &= torch.isfinite(teacher_logp)
            sampled_logp = torch.nan_to_num(teacher_logp, nan=0.0)
        per_token = topk_support_loss(
            student_logits_N_T_V,
            torch.nan_to_num(topk_logp, nan=0.0),
            s.need("teacher_topk_ids_N_T_K"),
            sampled_ids_N_T=s.response_ids_N_T if o.sampled_tail else None,
            teacher_sampled_logp_N_T=sampled_logp,
            clamp=o.clamp,
        )
        mask = s.mask_N_T * finite.to(s.mask_N_T.dtype)
        if o.mask_special_first and s.special_token_ids:
            mask = first_occurrence_special_mask(
                s.response_ids_N_T, list(s.special_token_ids), mask
            )
        return per_token, mask
