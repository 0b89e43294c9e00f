"""SENTINEL's context-aware DPO (C-DPO, arXiv 2507.12455; docs/method.md 9.3): the preference is
learnt on the sentence where a hallucination starts, after a shared non-hallucinated context.

The pair source says where that sentence is (`Pairs.weight_N_T`, 1 on its tokens); a source that
does not (the text domains' rollout pairs, whose responses are one answer each) weights whole
responses, and C-DPO is then DPO exactly."""

from __future__ import annotations

from pydantic import Field

from uniopd.algorithms.dpo import cdpo_loss
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.preference import PairSignals, PreferenceObjective, PreferenceOptions


class CDPOOptions(PreferenceOptions):
    beta: float = Field(default=0.1, gt=0, description="beta of the preference term.")
    length_norm: bool = Field(
        default=False, description="Mean instead of summed log-prob over the weighted tokens."
    )


@OBJECTIVES.register("cdpo")
class CDPO(PreferenceObjective):
    """DPO on the sentence that decides each pair, conditioned on the context before it."""

    label = "C-DPO"
    Options = CDPOOptions

    def pair_loss(self, s: PairSignals):
        p, o = s.pairs, self.options
        return cdpo_loss(
            s.policy_logp_N_T,
            s.reference_logp_N_T,
            s.weight_N_T(),
            p.chosen_P,
            p.rejected_P,
            o.beta,
            o.length_norm,
        )
