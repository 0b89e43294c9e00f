"""G-OPD / ExOPD (METHOD 7): reward extrapolation past the teacher with a reference model.

A = -[(log pi_theta - log pi_ref) - lambda (log piT - log pi_ref)]: lambda = 1 is OPD exactly,
lambda > 1 pushes the student past the teacher along the teacher's gain over the reference.
"""

from __future__ import annotations

from pydantic import Field

from uniopd.algorithms import exopd_advantages, opd_loss_mask
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.base import Need, NoOptions, Objective, Signals


class ExOPDOptions(NoOptions):
    lam: float = Field(default=1.25, description="Extrapolation lambda (1 = OPD).")
    reference: str = Field(
        default="self",
        min_length=1,
        description="The reference model pi_ref: self = the student's initial weights, or any model ref.",
    )


@OBJECTIVES.register("exopd")
class ExOPD(Objective):
    """OPD with the teacher's reward over a reference model scaled by lambda."""

    label = "ExOPD"
    kind = "advantage"
    distills = True
    Options = ExOPDOptions

    def needs(self):
        return frozenset({Need.TEACHER_LOGP, Need.REFERENCE_LOGP})

    def reference_model(self) -> str:
        return self.options.reference

    def advantages(self, s: Signals):
        t, o, m = s.need("teacher_logp_N_T"), s.student_logp_N_T, s.mask_N_T
        return (
            exopd_advantages(t, o, s.need("reference_logp_N_T"), m, self.options.lam),
            opd_loss_mask(t, o, m),
        )
