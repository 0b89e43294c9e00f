"""Standard OPD (METHOD 2): the advantage is the teacher's log-ratio on the student's own tokens."""

from __future__ import annotations

from uniopd.algorithms import opd_advantages, opd_loss_mask
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.base import Need, Objective, Signals


@OBJECTIVES.register("opd")
class OPD(Objective):
    """Sampled-token reverse KL: A_t = log piT(o_t) - log pi_old(o_t), through PPO-clip."""

    label = "OPD"
    kind = "advantage"
    distills = True

    def needs(self):
        return frozenset({Need.TEACHER_LOGP})

    def advantages(self, s: Signals):
        t, o, m = s.need("teacher_logp_N_T"), s.student_logp_N_T, s.mask_N_T
        return opd_advantages(t, o, m), opd_loss_mask(t, o, m)
