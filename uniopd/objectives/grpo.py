"""GRPO in the same loop (METHOD 5): the group-normalised outcome reward, on every token."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from uniopd.algorithms import grpo_advantages
from uniopd.objectives import OBJECTIVES
from uniopd.objectives.base import Need, NoOptions, Objective, Signals


class GRPOOptions(NoOptions):
    eps: float = Field(
        default=1e-6, gt=0, description="Added to the group reward std before dividing by it."
    )
    std: Literal["unbiased", "population"] = Field(
        default="unbiased",
        description="The group reward std: unbiased (divide by G - 1, as released) or population "
        "(divide by G; uniopd's default until 2026-11-29, advantages larger by sqrt(G / (G - 1))).",
    )


@OBJECTIVES.register("grpo")
class GRPO(Objective):
    """Outcome reward only: A_i = (R_i - mean_group R) / (std_group R + eps) on every token."""

    label = "GRPO"
    kind = "advantage"
    Options = GRPOOptions

    def needs(self):
        return frozenset({Need.REWARDS})

    def advantages(self, s: Signals):
        # groups are normalised over the whole batch, then sliced to the rows being updated: a
        # micro-batch that splits a group must not see a different group mean
        unbiased = self.options.std == "unbiased"
        per_rollout = grpo_advantages(s.rewards_N, s.group_ids_N, self.options.eps, unbiased)
        per_rollout = per_rollout[s.rows]
        return per_rollout[:, None] * s.mask_N_T, s.mask_N_T

    def problems(self, cfg):
        if cfg.rollout.group_size < 2:
            return [
                "normalises each reward against the other rollouts of its prompt, so "
                "rollout.group_size = 1 makes every advantage 0: use group_size >= 2"
            ]
        return []
