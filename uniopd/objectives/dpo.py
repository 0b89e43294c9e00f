"""DPO on the student's own graded rollouts (docs/method.md 9.1): within a prompt's group a correct
rollout is preferred to an incorrect one, against the frozen initial student."""

from __future__ import annotations

from pydantic import Field

from uniopd.algorithms.dpo import dpo_loss, sequence_logps
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.preference import PairSignals, PreferenceObjective, PreferenceOptions


class DPOOptions(PreferenceOptions):
    beta: float = Field(default=0.1, gt=0, description="DPO's beta (TRL's default 0.1).")
    length_norm: bool = Field(
        default=False,
        description="Mean instead of summed log-prob per response (summed: DPO and TRL).",
    )


@OBJECTIVES.register("dpo")
class DPO(PreferenceObjective):
    """-log sigmoid(beta * [(log pi - log pi_ref)(y_w) - (log pi - log pi_ref)(y_l)]) per pair."""

    label = "DPO"
    Options = DPOOptions

    def pair_loss(self, s: PairSignals):
        w, p, n = s.weight_N_T(), s.pairs, self.options.length_norm
        seq = sequence_logps(s.policy_logp_N_T, w, n)
        ref = sequence_logps(s.reference_logp_N_T, w, n)
        return dpo_loss(
            seq[p.chosen_P],
            seq[p.rejected_P],
            ref[p.chosen_P],
            ref[p.rejected_P],
            self.options.beta,
        )
