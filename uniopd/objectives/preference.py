"""What a preference objective is to the loop: a loss on (chosen, rejected) pairs of the batch's
rows, against a frozen reference model (docs/method.md section 9).

A pair loss couples two rows, which may fall in different micro-batches, so the loop never asks
for it per micro-batch. Once per epoch it evaluates `pair_loss` on the whole batch's current
per-token log-probs (a no-grad pass) and back-propagates it to them; each micro-batch then adds
`sum(grad * log pi)` to its loss, whose gradient is the pair loss's exactly
(uniopd.loop.preference). Pairs come from the student's own graded rollouts
(uniopd.loop.pairs): within a prompt's group, a correct rollout is preferred to an incorrect one;
or, with `data.pairs`, from a pair file, trained on offline (uniopd.loop.pair_batches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from uniopd.objectives.base import Need, NoOptions, Objective


@dataclass
class Pairs:
    """(chosen, rejected) row pairs of one batch, with each row's quality score."""

    chosen_P: torch.Tensor  # [P] row indices of the preferred responses
    rejected_P: torch.Tensor  # [P] row indices of the dispreferred ones
    score_N: torch.Tensor  # [N] each row's quality score (verifier, teacher, or both)
    # [N, T] where the pair is decided, per token (C-DPO: the sentence where the hallucination
    # starts); None: the whole response
    weight_N_T: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.chosen_P.numel())


@dataclass
class PairSignals:
    """What a pair loss reads: the whole batch's per-token log-probs `[N, T]` and its pairs."""

    policy_logp_N_T: torch.Tensor  # the current policy's; the loss is differentiated through it
    reference_logp_N_T: torch.Tensor  # the frozen reference's
    mask_N_T: torch.Tensor  # 1 on response tokens
    pairs: Pairs

    def weight_N_T(self) -> torch.Tensor:
        w = self.pairs.weight_N_T
        return self.mask_N_T if w is None else w * self.mask_N_T


class PreferenceOptions(NoOptions):
    reference: str = Field(
        default="self",
        min_length=1,
        description="The reference model pi_ref, loaded once and frozen: self = the student's "
        "initial weights, or any model ref.",
    )
    score: Literal["verifier", "teacher", "both", "file"] = Field(
        default="verifier",
        description="Each rollout's quality score S: verifier = its outcome (1 / 0; a pair file's "
        "chosen 1, rejected 0), teacher = the routed teacher's mean log-prob of its tokens, both "
        "= their sum, file = the pair file's scores column (needs data.pairs).",
    )
    pairing: Literal["all", "disjoint"] = Field(
        default="all",
        description="Pairs of a prompt's group: all = every (correct, incorrect) combination, "
        "disjoint = each rollout in at most one pair (min(#correct, #incorrect) pairs).",
    )
    max_pairs_per_group: int | None = Field(
        default=None,
        ge=1,
        description="Keep at most this many pairs per group, those with the widest score margin "
        "first (None: all).",
    )


class PreferenceObjective(Objective):
    """Subclass, set `label` and `Options` (a `PreferenceOptions`), implement `pair_loss`."""

    kind = "pair"
    Options = PreferenceOptions

    def needs(self):
        needs = {Need.REFERENCE_LOGP, Need.REWARDS}
        if self.options.score in ("teacher", "both"):
            needs.add(Need.TEACHER_LOGP)
        return frozenset(needs)

    def reference_model(self) -> str:
        return self.options.reference

    def pair_loss(self, s: PairSignals) -> torch.Tensor:
        """`[P]` the loss of each pair, differentiable in `s.policy_logp_N_T`."""
        raise NotImplementedError

    def problems(self, cfg) -> list[str]:
        if cfg.data.pairs is not None:  # offline pairs: no groups (uniopd.config.pair_file)
            return []
        if self.options.score == "file":
            return [
                "reads each pair's scores from a pair file (score: file), but data.pairs names "
                "none: name a pair file, or use score: verifier, teacher or both"
            ]
        if cfg.rollout.group_size < 2:
            return [
                "pairs each correct rollout of a prompt with an incorrect one of the same "
                "prompt, so rollout.group_size = 1 gives no pairs: use group_size >= 2"
            ]
        return []
