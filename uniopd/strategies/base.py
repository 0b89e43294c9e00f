"""The two strategy interfaces of the Uni-OPD recipe, as the training loop calls them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel

from uniopd.objectives.base import NoOptions


class _Strategy:
    """What both strategy kinds share: their config section and their validated options."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, section, options: BaseModel):
        self.section = section
        self.options: Any = options  # the subclass's own Options model

    def __eq__(self, other: object) -> bool:  # by kind and options: `section` holds this object
        return type(self) is type(other) and self.options == other.options  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


class OnlineBalancer(_Strategy):
    """Student side, every step: which rollouts of the batch the loss keeps (METHOD 3.2).

    `section` is the experiment's `balance.online` section (ratio, scope, ...); `options` its
    `options` mapping validated by `Options`. Balanced-out rollouts keep their slot in N.
    """

    def keep(
        self, correct_N: torch.Tensor, group_ids_N: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Keep mask [N] bool; `correct_N` holds 1 / 0 / NaN (ungraded)."""
        raise NotImplementedError


@dataclass
class Calibration:
    advantages_N_T: torch.Tensor
    dropped_N: torch.Tensor | None = None  # rollouts zeroed (left out of the order metrics)
    metrics: dict = field(default_factory=dict)


class Calibrator(_Strategy):
    """Teacher side: adjusts the distillation advantage using the outcomes (METHOD 4).

    `section` is the experiment's `calibration` section (delta, mode, direction, scope, ...).
    `correct_N` holds 1 / 0 / NaN; NaN rows are out of the statistics and must be left as they are.
    """

    def calibrate(
        self,
        advantages_N_T: torch.Tensor,
        mask_N_T: torch.Tensor,
        correct_N: torch.Tensor,
        group_ids_N: torch.Tensor,
    ) -> Calibration:
        raise NotImplementedError
