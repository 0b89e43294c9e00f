"""Omni-DPO (arXiv 2506.10054; docs/method.md 9.2): DPO with each pair weighted by its quality
(w_qual, from the score margin) and by the model's learning dynamics on it (w_perf, a focal
weight on the reward margin), plus a calibrated NLL term on the preferred response. Each part is
a switch; the defaults are the released math recipe (Qwen2.5-Math-7B)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from uniopd.algorithms.dpo import omni_dpo_loss, sequence_logps
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.preference import PairSignals, PreferenceObjective, PreferenceOptions


class OmniDPOOptions(PreferenceOptions):
    beta: float = Field(default=2.0, gt=0, description="beta of the DPO term (release: 2.0).")
    length_norm: bool = Field(
        default=True,
        description="Mean per-token log-prob per response, as the release (dpo_length_norm).",
    )
    quality_weight: bool = Field(
        default=True, description="w_qual = sigmoid(eta (S_w - S_l)); off: 1."
    )
    eta: float = Field(default=0.7, ge=0, description="w_qual's eta (release, math: 0.7).")
    dynamics_weight: bool = Field(
        default=True, description="w_perf = (1 - sigmoid(beta margin - tau_ref))^gamma; off: 1."
    )
    tau_ref: float = Field(default=2.0, description="w_perf's margin offset (release, math: 2.0).")
    gamma: float = Field(default=3.0, ge=0, description="w_perf's focal exponent (math: 3.0).")
    dynamics_margin: Literal["policy", "implicit"] = Field(
        default="policy",
        description="w_perf's margin: policy = log pi(y_w) - log pi(y_l) (the release), implicit "
        "= minus the reference's log-ratio too (the paper's Delta r).",
    )
    c_nll: bool = Field(default=True, description="Add the calibrated NLL term on y_w.")
    nll_lambda: float = Field(default=0.2, ge=0, description="c-NLL weight (math: 0.2).")
    tau_good: float | None = Field(
        default=None,
        description="c-NLL acts only where S_w >= tau_good (release: 8.0 on its reward model's "
        "scale); None: on every chosen response (on-policy chosen responses are all correct).",
    )


@OBJECTIVES.register("omni_dpo")
class OmniDPO(PreferenceObjective):
    """-w_qual * w_perf * log sigmoid(beta * margin) + lambda * c-NLL per pair."""

    label = "Omni-DPO"
    Options = OmniDPOOptions

    def pair_loss(self, s: PairSignals):
        o, p = self.options, s.pairs
        w = s.weight_N_T()
        seq = sequence_logps(s.policy_logp_N_T, w, o.length_norm)
        ref = sequence_logps(s.reference_logp_N_T, w, o.length_norm)
        c, r = p.chosen_P, p.rejected_P
        return omni_dpo_loss(
            seq[c],
            seq[r],
            ref[c],
            ref[r],
            p.score_N[c],
            p.score_N[r],
            beta=o.beta,
            eta=o.eta if o.quality_weight else None,
            tau_ref=o.tau_ref,
            gamma=o.gamma if o.dynamics_weight else None,
            nll_lambda=o.nll_lambda if o.c_nll else 0.0,
            tau_good=o.tau_good,
            dynamics_on_policy_margin=o.dynamics_margin == "policy",
        )
