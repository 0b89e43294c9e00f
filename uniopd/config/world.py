"""The `world` section of an experiment file: which tiny world `builtin:` models come from, and the
dials that set the conditions Uni-OPD's claims depend on (uniopd/world/recipe.py builds them).

    world: {version: 5, teacher_flaw: 0.3, deficit: skill, difficulty_skew: 0.8}
    world: {version: 6, latent_difficulty: true, horizon: 8}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from uniopd.config.section import _Section, conflict
from uniopd.world.recipe import (
    CURRENT_VERSION,
    MAX_HORIZON,
    TEACHER_FLAW_MAX,
    Dials,
    check_dials,
    check_horizon,
)


class WorldConfig(_Section):
    version: int = Field(
        default=CURRENT_VERSION,
        description="Recipe version of the tiny world (4 = before the dials and the unbiased "
        "GRPO std; 5 = current, shipped; 6 = chained problems, the habit a chance of quitting at "
        "every step, and the dials latent_difficulty, horizon and deficit soft_skill). Older "
        "versions are not built by this code.",
    )
    teacher_flaw: float = Field(
        default=0.0,
        ge=0,
        le=TEACHER_FLAW_MAX,
        description="Share of the experts' warm-start solutions that stop one step early, the "
        "student's own kind of error: the higher, the more the experts' token scores favour the "
        "student's wrong outcomes (order consistency before calibration falls).",
    )
    deficit: Literal["habit", "skill", "soft_skill"] = Field(
        default="habit",
        description="What the student lacks: habit = stops one step early in a share of its "
        "warm start (version 6: quits at every step with some chance; an outcome reward also "
        "removes it); skill = never saw some operations, so the prompts that use them are "
        "all-wrong groups (no outcome signal, the teacher still teaches); soft_skill (version 6) "
        "= saw them written right in only 3 % of its warm start, so it samples the right token "
        "rarely instead of never.",
    )
    latent_difficulty: bool = Field(
        default=False,
        description="Version 6, habit deficit: the student's chance of quitting at a step "
        "depends on the prompt's difficulty class (the protagonist in math, the argument's name "
        "in code), from 0.01 to 0.98, so its pass rate is a property of the prompt (intraclass "
        "correlation of pass rates well above 0) and difficulty_skew skews true difficulty.",
    )
    horizon: int | None = Field(
        default=None,
        ge=1,
        le=MAX_HORIZON,
        description="Version 6: the number of chained steps of every builtin: train and test "
        "problem (a mistake at any step fails it); None = levels 1-4 as in earlier worlds. "
        "Changes the data, not the models; long horizons need rollout.max_new_tokens of about "
        "12 tokens a step.",
    )
    difficulty_skew: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Share of the training list made of prompts the initial student always or "
        "never solves (its pass counts from balance.offline's estimate), the rest sometimes "
        "solved; per domain, before offline balancing. None = the list as it is.",
    )
    difficulty_skew_size: int | None = Field(
        default=None,
        ge=2,
        description="Prompts per domain in the skewed list (the same at every skew keeps runs "
        "comparable); None = as many as the data allow at this skew.",
    )

    def dials(self) -> Dials:
        return Dials(
            teacher_flaw=self.teacher_flaw,
            deficit=self.deficit,
            latent_difficulty=self.latent_difficulty,
        )

    def dials_set(self) -> list[str]:
        """The dials set away from the default world, as "world.<dial> <value>", the model dials
        first (for messages that must name every one, horizon included)."""
        default = WorldConfig.model_construct()
        names = ["teacher_flaw", "deficit", "latent_difficulty", "horizon"]
        return [
            f"world.{n} {getattr(self, n)}"
            for n in names
            if getattr(self, n) != getattr(default, n)
        ]

    @model_validator(mode="after")
    def _buildable(self) -> WorldConfig:
        try:
            check_dials(self.version, self.dials())
            check_horizon(self.version, self.horizon)
        except ValueError as exc:
            field = str(exc).split(":", 1)[0].removeprefix("world.")
            raise conflict(str(exc).split(": ", 1)[1], field) from None
        if self.difficulty_skew_size is not None and self.difficulty_skew is None:
            raise conflict(
                "difficulty_skew_size is set but difficulty_skew is not", "difficulty_skew_size"
            )
        return self

    def select(self) -> None:
        """`builtin:` models of this process (and the processes it starts) from this world."""
        from uniopd.world.recipe import select_world

        select_world(self.version, self.dials(), self.horizon)
