"""What an objective is to the training loop: what it needs, what it returns, how it is checked.

An objective is either an *advantage* (per-token values that the PPO-clip surrogate turns into a
policy gradient, METHOD 2) or a direct differentiable *loss* on the student's logits (the
full-vocabulary and top-K divergences, METHOD 7). It declares the signals it needs, and the loop
computes only those: no teacher pass for GRPO, no full teacher logits for OPD.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict

from uniopd.refs import TeacherRef


class Need(StrEnum):
    TEACHER_LOGP = "teacher_logp"  # the routed teacher's log-prob of each sampled token
    TEACHER_TOPK = "teacher_topk"  # its top-K log-probs and token ids at each position
    TEACHER_LOGITS = "teacher_logits"  # its full logits on the response (one micro-batch at a time)
    PRIVILEGED = "privileged_context"  # the teacher's prompt also holds the reference solution
    REFERENCE_LOGP = "reference_logp"  # a frozen reference model's log-prob of each sampled token
    REWARDS = "rewards"  # the verifier's outcomes


def teacher_signals(teacher: TeacherRef) -> frozenset[Need]:
    """The teacher signals this kind of teacher can give. A served model returns the log-prob of
    each given token (prompt log-probs), not its full distribution."""
    if teacher.is_server:
        return frozenset({Need.TEACHER_LOGP})
    return frozenset({Need.TEACHER_LOGP, Need.TEACHER_TOPK, Need.TEACHER_LOGITS})


TEACHER_NEEDS = frozenset({Need.TEACHER_LOGP, Need.TEACHER_TOPK, Need.TEACHER_LOGITS})


@dataclass
class Signals:
    """What the loop computed for the n rows being updated; `rows` index them in the batch of N.

    Per-row tensors are `[n, ...]`; `rewards_N` and `group_ids_N` cover the whole batch, so a
    group statistic is the same whichever micro-batch asks. A signal nobody asked for is None.
    """

    rows: torch.Tensor  # [n] indices into the batch
    mask_N_T: torch.Tensor  # [n, T] 1 on response tokens
    student_logp_N_T: torch.Tensor  # [n, T] log pi_old of the sampled tokens
    response_ids_N_T: torch.Tensor  # [n, T]
    rewards_N: torch.Tensor  # [N] 1 / 0 / NaN (ungraded)
    group_ids_N: torch.Tensor  # [N]
    teacher_logp_N_T: torch.Tensor | None = None
    teacher_topk_logp_N_T_K: torch.Tensor | None = None
    teacher_topk_ids_N_T_K: torch.Tensor | None = None
    teacher_logits_N_T_V: torch.Tensor | None = None
    reference_logp_N_T: torch.Tensor | None = None
    special_token_ids: tuple[int, ...] = ()

    def need(self, name: str) -> torch.Tensor:
        """A signal the objective declared it needs; the loop guarantees it is there."""
        value = getattr(self, name)
        if value is None:
            raise RuntimeError(f"signal {name} was not computed: declare it in needs()")
        return value


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Objective:
    """Subclass, set the class attributes, implement `advantages` or `loss`, and register:

    @OBJECTIVES.register("my_objective")
    class MyObjective(Objective): ...
    """

    label: ClassVar[str] = ""  # its name in tables and wandb groups
    kind: ClassVar[Literal["advantage", "loss", "pair"]] = "advantage"  # pair: preference.py
    distills: ClassVar[bool] = False  # a distillation return: calibration acts on it
    Options: ClassVar[type[BaseModel]] = NoOptions  # `method.options.<name>` in the experiment file

    def __init__(self, options: BaseModel | None = None):
        # Any: each subclass reads the fields of its own Options model
        self.options: Any = options if options is not None else self.Options()

    def __eq__(self, other: object) -> bool:  # configs holding objectives compare by value
        return type(self) is type(other) and self.options == other.options  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def needs(self) -> frozenset[Need]:
        return frozenset()

    def reference_model(self) -> str | None:
        """The model ref whose log-probs `REFERENCE_LOGP` asks for ("self": the initial student)."""
        return None

    def advantages(self, s: Signals) -> tuple[torch.Tensor, torch.Tensor]:
        """(advantages [n, T], loss mask [n, T]) for an advantage objective."""
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} objective")

    def loss(
        self, s: Signals, student_logits_N_T_V: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-token loss [n, T], loss mask [n, T]) for a loss objective; differentiable."""
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} objective")

    def problems(self, cfg) -> list[str]:
        """Why this objective cannot run with `cfg` (checked at load, before any model)."""
        return []
