"""A new objective: OPD with each token's advantage clipped to +-clip."""

from pydantic import Field

from uniopd.algorithms import opd_advantages, opd_loss_mask
from uniopd.objectives import OBJECTIVES, Need, NoOptions, Objective


class ClippedOPDOptions(NoOptions):
    clip: float = Field(default=2.0, gt=0, description="Largest |advantage| of a token.")


@OBJECTIVES.register("clipped_opd")
class ClippedOPD(Objective):
    """OPD whose per-token advantage is clipped to +-clip."""

    label = "clipped OPD"
    kind = "advantage"  # a policy gradient through PPO-clip; "loss" for a differentiable loss
    distills = True  # a distillation return: margin calibration may act on it
    Options = ClippedOPDOptions  # method.options.clipped_opd in an experiment file

    def needs(self):
        return frozenset({Need.TEACHER_LOGP})  # the loop computes only what objectives need

    def advantages(self, s):
        t, o, m = s.need("teacher_logp_N_T"), s.student_logp_N_T, s.mask_N_T
        adv = opd_advantages(t, o, m).clamp(-self.options.clip, self.options.clip)
        return adv, opd_loss_mask(t, o, m)
