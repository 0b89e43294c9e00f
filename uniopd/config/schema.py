"""The typed schema of an experiment file: one model class per section, every field with help text.

An experiment file (experiments/*.yaml) is validated against `ExperimentConfig`; `load.py` reads
the YAML, resolves `base:` inheritance and command-line overrides, and turns validation errors into
one-line messages. Add a new section by writing one more `_Section` subclass and one field on
`ExperimentConfig`; `describe_fields()` and the tests pick it up by walking the schema.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from uniopd.config.recipe import (
    BalanceConfig,
    CalibrationConfig,
    OfflineBalanceConfig,
    OnlineBalanceConfig,
)
from uniopd.config.section import _Section, build_options, conflict
from uniopd.objectives import OBJECTIVES, TEACHER_NEEDS
from uniopd.refs import parse_teacher
from uniopd.registry import check_name


class DataConfig(_Section):
    train: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1,
        description="Training prompt sources: builtin:<domain>/<split>, a .jsonl/.parquet path, "
        "'humaneval', 'champ', or <scheme>:<rest> of a registered source (`uniopd list sources`). "
        "Each row carries its domain, which routes it to a teacher.",
    )
    eval: list[Annotated[str, Field(min_length=1)]] = Field(
        default=[], description="Held-out sources evaluated before, during and after training."
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description="Cap on training prompts read from each train source (None = all); a small "
        "pool makes prompts recur. Held-out sets are capped by eval.max_prompts_per_domain.",
    )
    template: Literal["chat", "raw"] = Field(
        default="chat",
        description="chat = wrap the prompt in the tokenizer's chat template; raw = feed it as is.",
    )


class MethodConfig(_Section):
    name: str = Field(
        default="opd",
        min_length=1,
        description="The objective: a registered name (`uniopd list`: opd, grpo, jsd, forward_kl, "
        "reverse_kl, topk, opsd, exopd, or a plugin's), or several joined by '+' (opd+grpo), "
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


class RolloutConfig(_Section):
    group_size: int = Field(default=8, ge=1, description="Rollouts sampled per prompt (G).")
    prompts_per_batch: int = Field(default=16, ge=1, description="Prompts per rollout batch (B).")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling mass (1 = off).")
    top_k: int = Field(
        default=0, ge=0, description="Sample from the k most likely tokens (0 = off)."
    )
    max_new_tokens: int = Field(default=128, ge=1, description="Longest response, in tokens.")


_Beta = Annotated[float, Field(ge=0, lt=1)]


class TrainConfig(_Section):
    steps: int = Field(default=50, ge=1, description="Optimizer steps, one rollout batch each.")
    lr: float = Field(default=1e-6, gt=0, description="Peak learning rate (AdamW).")
    warmup_steps: int = Field(default=5, ge=0, description="Linear warm-up steps from 0 to lr.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="constant", description="Learning-rate shape after warm-up."
    )
    betas: tuple[_Beta, _Beta] = Field(default=(0.9, 0.98), description="AdamW (beta1, beta2).")
    weight_decay: float = Field(default=0.1, ge=0, description="AdamW decoupled weight decay.")
    epochs: int = Field(
        default=1,
        ge=1,
        description="Optimizer passes over each rollout batch (PPO epochs); with 1 the clip is inactive.",
    )
    micro_batch_size: int = Field(
        default=0,
        ge=0,
        description="Rollouts per forward/backward pass, gradients accumulated (0 = whole batch).",
    )
    logits_micro_batch_size: int = Field(
        default=16,
        ge=1,
        description="Rollouts per forward/backward pass when an objective needs the teacher's full "
        "logits (rows x T x V floats each): the smaller of this and micro_batch_size, so the "
        "whole batch's teacher logits never exist at once.",
    )
    clip_low: float = Field(
        default=0.2, ge=0, lt=1, description="PPO clip below: the ratio is kept >= 1 - clip_low."
    )
    clip_high: float = Field(
        default=0.28, ge=0, description="PPO clip above: the ratio is kept <= 1 + clip_high."
    )
    logp_gap_mask: float = Field(
        default=10.0,
        gt=0,
        description="Threshold c: tokens where |log pi_student - log pi_teacher| >= c get zero loss.",
    )
    max_grad_norm: float = Field(
        default=1.0, ge=0, description="Clip the global gradient norm to this (0 = off)."
    )


class EvalConfig(_Section):
    every: int = Field(
        default=10, ge=0, description="Evaluate every this many steps (0 = only before and after)."
    )
    n_samples: int = Field(default=4, ge=1, description="Responses sampled per eval prompt (n).")
    pass_k: list[Annotated[int, Field(ge=1)]] = Field(
        default=[1], min_length=1, description="k values for the unbiased pass@k estimate (k <= n)."
    )
    temperature: float = Field(
        default=1.0, ge=0, description="Eval sampling temperature (0 = greedy)."
    )
    top_p: float = Field(
        default=1.0, gt=0, le=1, description="Eval nucleus sampling mass (1 = off)."
    )
    top_k: int = Field(default=0, ge=0, description="Eval top-k sampling (0 = off).")
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="Longest eval response (None = rollout.max_new_tokens)."
    )
    max_prompts_per_domain: int | None = Field(
        default=None, ge=1, description="Cap on eval prompts per domain (None = all)."
    )

    @model_validator(mode="after")
    def _k_within_n(self) -> EvalConfig:
        too_big = [k for k in self.pass_k if k > self.n_samples]
        if too_big:
            raise conflict(
                f"pass_k={self.pass_k} asks for pass@{max(too_big)}, but n_samples={self.n_samples}: "
                "pass@k is estimated from n samples per prompt and needs k <= n_samples",
                "pass_k",
                "n_samples",
            )
        return self


class OutputConfig(_Section):
    root: str = Field(default="runs", min_length=1, description="Folder holding run directories.")
    checkpoint_every: int = Field(
        default=0,
        ge=0,
        description="Save a checkpoint every this many steps (0 = only the final one).",
    )
    keep_checkpoints: int = Field(
        default=2, ge=1, description="Most recent checkpoints kept on disk; older ones are deleted."
    )
    log_rollouts_every: int = Field(
        default=1,
        ge=0,
        description="Write per-rollout records every this many steps (0 = never).",
    )
    advantage_pairs: int = Field(
        default=4,
        ge=0,
        description="(correct, incorrect) rollout pairs per rollout-logging step whose per-token "
        "advantages before and after calibration go to pairs.jsonl (the order-consistency heatmap).",
    )
    progress: bool = Field(default=True, description="Show a progress bar on the terminal.")


class TrackingConfig(_Section):
    wandb: Literal["auto", "online", "offline", "disabled"] = Field(
        default="auto",
        description="wandb mirror of the run directory: online (needs a login, else offline), "
        "offline (files under the run, `wandb sync` later), disabled; auto = offline. "
        "The WANDB_MODE environment variable wins.",
    )
    project: str = Field(default="uniopd", min_length=1, description="wandb project.")
    entity: str | None = Field(
        default=None, description="wandb entity (team or user); None = your default."
    )


class ExperimentConfig(_Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Run name; the run directory is <output.root>/<name>.",
    )
    description: str = Field(default="", description="Free text: what this run tests.")
    seed: int = Field(default=0, description="Seed for sampling, data order and balancing.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto = cuda when available, else cpu."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Model dtype; auto = bfloat16 on CUDA, float32 on CPU."
    )
    student: str = Field(
        min_length=1,
        description="Student model: an HF checkpoint directory, a hub id, or builtin:<name>.",
    )
    teachers: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default={},
        description="Domain -> teacher: a model (same forms as student); self = the student's "
        "initial weights, self@ema[=decay] its moving average; a +privileged suffix shows the "
        "teacher each row's reference solution (OPSD).",
    )
    verifiers: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default={},
        description="Domain -> verifier name; an unlisted domain uses the verifier named like it.",
    )
    data: DataConfig = Field(description="Where prompts come from.")
    method: MethodConfig = Field(
        default_factory=MethodConfig, description="The training objective."
    )
    balance: BalanceConfig = Field(
        default_factory=BalanceConfig, description="Uni-OPD student-side data balancing."
    )
    calibration: CalibrationConfig = Field(
        default_factory=CalibrationConfig, description="Uni-OPD teacher-side margin calibration."
    )
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Student sampling.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Periodic evaluation.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="The run directory.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="Mirrors of the run directory."
    )

    @field_validator("name")
    @classmethod
    def _not_dots(cls, name: str) -> str:
        # "." and ".." match the pattern but would make the run directory the root or its parent.
        if set(name) == {"."}:
            raise PydanticCustomError("name", "'{name}' is not a directory name", {"name": name})
        return name

    @model_validator(mode="after")
    def _method_has_what_it_needs(self) -> ExperimentConfig:
        name = self.method.name
        if self.method.needs_teacher() and not self.teachers:
            raise conflict(
                f"method '{name}' distils from teachers, but 'teachers' is empty: "
                "name a teacher for every domain in data",
                "teachers",
                "method.name",
            )
        for part, _, objective in self.method.objectives():
            for why in objective.problems(self):
                raise conflict(f"objective {part} {why}", "method.name")
        for domain, ref in self.teachers.items():
            try:
                teacher = parse_teacher(ref)
            except ValueError as exc:
                raise conflict(str(exc), f"teachers.{domain}") from None
            missing = self.method.needs() & TEACHER_NEEDS - teacher.provides()
            if missing and self.method.needs_teacher():
                raise conflict(
                    f"method '{name}' needs {', '.join(sorted(map(str, missing)))} from its teacher, "
                    f"but teachers.{domain} = {ref} gives only "
                    f"{', '.join(sorted(map(str, teacher.provides())))}",
                    f"teachers.{domain}",
                    "method.name",
                )
        if self.calibration.enabled() and not self.method.distills():
            which = self.calibration.field_name()
            raise conflict(
                f"calibration.{which} calibrates a distillation advantage (opd, opsd, exopd), but "
                f"method '{name}' has none: add one, or switch calibration off",
                f"calibration.{which}",
                "method.name",
            )
        online = self.balance.online
        if online.enabled and online.scope == "group" and self.rollout.group_size < 2:
            raise conflict(
                "online balancing within groups needs rollout.group_size >= 2: a one-rollout group "
                "always has a single outcome and is never balanced",
                "balance.online.enabled",
                "rollout.group_size",
            )
        return self


def describe_fields(
    model: type[BaseModel] = ExperimentConfig, prefix: str = ""
) -> list[tuple[str, str, str, str]]:
    """(dotted name, type, default, help) for every leaf field, in schema order: the table behind
    `uniopd config --fields` and the README."""
    rows = []
    for name, info in model.model_fields.items():
        dotted = prefix + name
        if info.annotation is not None and _is_section(info.annotation):
            rows += describe_fields(info.annotation, dotted + ".")  # type: ignore[arg-type]
            continue
        if info.is_required():
            default = "required"
        else:
            default = info.get_default(call_default_factory=True)
            default = repr(list(default) if isinstance(default, tuple) else default)
        bounds = _bounds(info.metadata)
        kind = _type_name(info.annotation) + (f" ({bounds})" if bounds else "")
        rows.append((dotted, kind, default, info.description or ""))
    return rows


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _bounds(metadata: list) -> str:
    signs = {
        annotated_types.Ge: ">=",
        annotated_types.Gt: ">",
        annotated_types.Le: "<=",
        annotated_types.Lt: "<",
    }
    parts = []
    for item in metadata:
        sign = signs.get(type(item))
        if sign:
            parts.append(f"{sign} {getattr(item, type(item).__name__.lower())}")
    return ", ".join(parts)


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


__all__ = [
    "DataConfig",
    "MethodConfig",
    "BalanceConfig",
    "OfflineBalanceConfig",
    "OnlineBalanceConfig",
    "CalibrationConfig",
    "TrackingConfig",
    "RolloutConfig",
    "TrainConfig",
    "EvalConfig",
    "OutputConfig",
    "ExperimentConfig",
    "conflict",
    "describe_fields",
]
