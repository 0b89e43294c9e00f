"""The `student` section of an experiment file: which model is trained, and whether it is trained
whole or through a LoRA adapter (uniopd/engine/lora.py).

    student: builtin:student                     # shorthand for {model: builtin:student}
    student:
      model: /models/Qwen3-4B-Base
      lora: {r: 16, alpha: 32, target_modules: [q_proj, v_proj]}
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from uniopd.config.section import _Section
from uniopd.refs import model_ref_problem


class LoraConfig(_Section):
    r: int = Field(default=16, ge=1, description="LoRA rank: the width of the low-rank update.")
    alpha: float = Field(
        default=32.0,
        gt=0,
        description="LoRA scaling numerator: the update is scaled by alpha / r.",
    )
    dropout: float = Field(
        default=0.0, ge=0, lt=1, description="Dropout on the adapter's input (0 = off)."
    )
    target_modules: list[Annotated[str, Field(min_length=1)]] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Module names that get an adapter: a name matches every module whose dotted "
        "path ends with it (q_proj, mlp.down_proj); each must match a layer of the student, "
        "checked before any model loads.",
    )


class StudentConfig(_Section):
    # A plain string is this field, so `student: builtin:student` (every file written before LoRA,
    # and old run directories' config.yaml) still reads; load.py merges it with mappings likewise.
    SHORTHAND: ClassVar[str] = "model"

    model: str = Field(
        min_length=1,
        description="Student model: an HF checkpoint directory, a hub id, or builtin:<name>.",
    )
    lora: LoraConfig | None = Field(
        default=None,
        description="Train a LoRA adapter on the frozen student instead of all its weights "
        "(None = full fine-tuning). Checkpoints then hold the adapter; `uniopd merge` folds it "
        "into a plain checkpoint.",
    )

    @field_validator("model")
    @classmethod
    def _model_exists(cls, model: str) -> str:
        problem = model_ref_problem(model, paths=False)  # paths: on the machine that runs it
        if problem:
            raise ValueError(problem)
        return model

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # numbers too: a model directory may be named 2024, as `name: 2024` may be
        plain = isinstance(data, str | int | float) and not isinstance(data, bool)
        return {cls.SHORTHAND: data} if plain else data
