"""SENTINEL's context-aware DPO (C-DPO, arXiv 2507.12455; docs/method.md 9.3): the preference is
learnt on the sentence where a hallucination starts, after a shared non-hallucinated context.

The pair source says where that sentence is (`Pairs.weight_N_T`, 1 on its tokens); a source that
does not (the text domains' rollout pairs, whose responses are one answer each) weights whole
responses, and C-DPO is then DPO exactly."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from uniopd.algorithms.dpo import cdpo_loss
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.preference import PairSignals, PreferenceObjective, PreferenceOptions


class CDPOOptions(PreferenceOptions):
    beta: float = Field(default=0.1, gt=0, description="beta of the preference term.")
    length_norm: bool = Field(
        default=False, description="Mean instead of summed log-prob over the weighted tokens."
    )
    pairs: Literal["rollouts", "sentinel"] = Field(
        default="rollouts",
        description="Where the pairs come from: rollouts = (correct, incorrect) rollouts of a "
        "prompt, whole responses (C-DPO is then DPO); sentinel = SENTINEL's context-coherent "
        "sentence pairs, bootstrapped each step from the student's descriptions of the describe "
        "task's pictures and checked by two detectors (uniopd/loop/sentinel.py).",
    )
    iterations: int = Field(
        default=3,
        ge=1,
        description="pairs: sentinel: context-growing iterations per picture (the context holds "
        "at most iterations - 1 sentences); each samples rollout.group_size continuations.",
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

    def problems(self, cfg) -> list[str]:
        out = super().problems(cfg)
        if self.options.pairs != "sentinel":
            return out
        if cfg.data.pairs is not None:
            return [
                "builds its pairs from the student's own descriptions (pairs: sentinel), but "
                "data.pairs gives pairs from a file: use data.train: [builtin:describe/train], "
                "or pairs: rollouts"
            ]
        other = [str(getattr(s, "source", s)) for s in cfg.data.train if not _describe_source(s)]
        if other:
            out.append(
                f"pairs: sentinel checks the objects of the describe task's pictures (each row's "
                f"ground truth and detectors), but data.train has {', '.join(other)}: "
                "train on builtin:describe/<split> only, or use pairs: rollouts"
            )
        return out


def _describe_source(source) -> bool:
    """A `data.train` entry SENTINEL's pairs can read: the describe task's built-in splits."""
    return str(getattr(source, "source", source)).startswith("builtin:describe/")
