"""The `method` section of an experiment file: which registered objectives train the student, with
what weights and options (uniopd/objectives; docs/method.md section 8)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from uniopd.config.section import _Section, build_options, conflict
from uniopd.objectives import OBJECTIVES, TEACHER_NEEDS
from uniopd.registry import check_name


class MethodConfig(_Section):
    name: str = Field(
        default="opd",
        min_length=1,
        description="The objective: a registered name (`uniopd list`: opd, grpo, jsd, forward_kl, "
        "reverse_kl, topk, opsd, exopd, dpo, omni_dpo, cdpo, or a plugin's), or several joined by '+' (opd+grpo), "
        "whose advantages and losses are summed with `coefs`.",
    )
    coefs: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default={}, description="Weight of each objective in `name` (default 1; 0 switches it off)."
    )
    options: dict[str, dict[str, Any]] = Field(
        default={},
        description="Each objective's own options, e.g. {jsd: {beta: 0.5}}; `uniopd list` shows them.",
    )
    _built: list = PrivateAttr(default_factory=list)

    def parts(self) -> list[str]:
        return [p.strip() for p in self.name.split("+")]

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """Run directories and files written before objectives were registered say opd_coef,
        grpo_coef and grpo_eps; they read as coefs.opd, coefs.grpo and options.grpo.eps."""
        if not isinstance(data, dict) or not {"opd_coef", "grpo_coef", "grpo_eps"} & set(data):
            return data
        data = dict(data)
        parts = [p.strip() for p in str(data.get("name", "opd")).split("+")]
        coefs, options = dict(data.get("coefs") or {}), dict(data.get("options") or {})
        for key, part in (("opd_coef", "opd"), ("grpo_coef", "grpo")):
            if key in data:
                value = data.pop(key)
                if part in parts:
                    coefs.setdefault(part, value)
        if "grpo_eps" in data:
            eps = data.pop("grpo_eps")
            if "grpo" in parts:
                options.setdefault("grpo", {}).setdefault("eps", eps)
        data["coefs"], data["options"] = coefs, options
        return data

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        for part in name.split("+"):
            check_name(OBJECTIVES, part.strip())
        return name

    @model_validator(mode="after")
    def _build(self) -> MethodConfig:
        parts = self.parts()
        if len(set(parts)) != len(parts):
            raise conflict(f"'{self.name}' names an objective twice", "name")
        for field, keys in (("coefs", self.coefs), ("options", self.options)):
            stray = [k for k in keys if k not in parts]
            if stray:
                raise conflict(
                    f"{field} names {stray}, which '{self.name}' does not use; its "
                    f"objectives are {parts}",
                    f"{field}.{stray[0]}",
                    "name",
                )
        built = []
        for part in parts:
            cls = OBJECTIVES.get(part)
            try:
                options = build_options(cls, self.options.get(part, {}), f"objective {part}")
            except PydanticCustomError as exc:  # name the option under this objective's key
                ctx = exc.context or {}
                fields = [f.replace("options", f"options.{part}", 1) for f in ctx["fields"]]
                raise conflict(ctx["reason"], *fields) from None
            if self.coefs.get(part, 1.0) > 0:
                built.append((part, self.coefs.get(part, 1.0), cls(options)))
        if not built:
            raise conflict(
                f"method '{self.name}' with every coefficient 0 has no loss term left to "
                "train on: make a coefficient positive",
                "coefs",
                "name",
            )
        self._built = built
        return self

    def objectives(self) -> list:
        """(name, coefficient, Objective) of every term with a positive weight, in `name` order."""
        return list(self._built)

    def needs(self) -> frozenset:
        return frozenset().union(*(obj.needs() for _, _, obj in self._built))

    def needs_teacher(self) -> bool:
        return bool(self.needs() & TEACHER_NEEDS)

    def distills(self) -> bool:
        """Some advantage term is a distillation return (what margin calibration acts on)."""
        return any(obj.distills and obj.kind == "advantage" for _, _, obj in self._built)
