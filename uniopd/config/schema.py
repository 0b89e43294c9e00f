"""The typed schema of an experiment file: one model class per section, every field with help text.

An experiment file (experiments/*.yaml) is validated against `ExperimentConfig`; `load.py` reads
the YAML, resolves `base:` inheritance and command-line overrides, and turns validation errors into
one-line messages. Add a new section by writing one more `_Section` subclass and one field on
`ExperimentConfig`; `describe_fields()` (fields.py) and the tests pick it up by walking the
schema. The `method` section lives in method.py, `train` in train.py, the Uni-OPD sections in
uni_opd.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from uniopd.config.data import DataConfig
from uniopd.config.method import MethodConfig
from uniopd.config.pair_file import pair_file_conflicts
from uniopd.config.rollout import RolloutConfig
from uniopd.config.section import _Section, conflict
from uniopd.config.serving import TeacherServerConfig
from uniopd.config.student import LoraConfig, StudentConfig
from uniopd.config.train import TrainConfig
from uniopd.config.uni_opd import (
    BalanceConfig,
    CalibrationConfig,
    OfflineBalanceConfig,
    OnlineBalanceConfig,
)
from uniopd.config.world import WorldConfig
from uniopd.objectives import TEACHER_NEEDS
from uniopd.objectives.base import teacher_signals
from uniopd.refs import model_ref_problem, parse_teacher


class EvalConfig(_Section):
    every: int = Field(
        default=10,
        ge=0,
        description="Evaluate every this many steps (0 = none during training; before and after "
        "follow their own switches).",
    )
    before: bool = Field(
        default=True, description="Evaluate the initial student before the first step."
    )
    after: bool = Field(
        default=True,
        description="Evaluate the final student after the last step. With every: 0, before: "
        "false and after: false the run evaluates nothing (the release's OPD runs; evaluate the "
        "checkpoints afterwards with `uniopd eval`).",
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
        "offline (files under the run, `wandb sync` later), disabled; auto = online when "
        "logged in, else offline (one line says which). The WANDB_MODE environment variable "
        "wins.",
    )
    tensorboard: bool = Field(
        default=False,
        description="TensorBoard mirror of the run directory: every metric and evaluation as "
        "events in runs/<name>/tensorboard/, with the Uni-OPD toggles in the hparams view "
        "(`tensorboard --logdir runs`). `uniopd board RUNS` shows any runs live without it.",
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
    seed: int = Field(
        default=0,
        ge=0,
        lt=2**32,  # what every generator takes (numpy's is the narrowest)
        description="Seed for sampling, data order and balancing, 0 <= seed < 2**32.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto = cuda when available, else cpu."
    )
    distributed_timeout_s: float = Field(
        default=7200.0,
        gt=0,
        description="With several processes (--nproc): the longest, in seconds, a process waits "
        "in a collective (joining at start, a gather, a barrier) for the others before the run "
        "stops with an error instead of hanging. Every process evaluates and estimates "
        "difficulty on its share of the rows, so the waits are the first process's writes "
        "(checkpoints) and the skew between processes; leave room for those.",
    )
    precision: Literal["auto", "fp32", "bf16-mixed", "fp16-mixed", "bf16-pure"] = Field(
        default="auto",
        description="fp32; bf16-mixed / fp16-mixed = float32 master weights and Adam state with "
        "half-precision forward passes (autocast) and half-precision teachers; bf16-pure = "
        "weights and Adam state in bfloat16, where small updates round away (a warning names "
        "the lr). auto = bf16-mixed on CUDA, fp32 on CPU.",
    )
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = Field(
        default="sdpa",
        description="Attention kernel of every model loaded (transformers' attn_implementation); "
        "flash_attention_2 needs the flash-attn package and a GPU.",
    )
    student: StudentConfig = Field(
        description="The trained model: `student: <model>` (a checkpoint directory, hub id or "
        "builtin:<name>), or {model, lora} to train a LoRA adapter on it. On the command line "
        "`student=<model>` sets the model and keeps the rest of the section.",
    )
    teachers: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default={},
        description="Domain -> teacher: a model (same forms as student); self = the student's "
        "initial weights, self@ema[=decay] its moving average; a +privileged suffix shows the "
        "teacher each row's reference solution (OPSD).",
    )
    teacher_device: str | list[str] | dict[str, str | list[str]] | None = Field(
        default=None,
        description="Where each process puts its teachers, for all (or domain -> this): a device "
        "(cpu, cuda:1; with several processes, each loading its own copy, only cpu); a rule "
        "(cuda:{local_rank+4}: the process of local rank r on cuda:r+4); or a list, entry r for "
        "local rank r ([cuda:4, cuda:5]). None = the student's device. Checked for every process "
        "against the GPUs torch sees before any model loads. Scores come back to the student's "
        "device.",
    )
    teacher_tokenizers: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default={},
        description="Domain -> where that teacher's tokenizer (vocabulary and chat template) is "
        "read from, when not its model folder: a served teacher's. Checked against the student's "
        "at start; a served teacher without one is taken to share the student's tokenizer.",
    )
    teacher_server: TeacherServerConfig = Field(
        default_factory=TeacherServerConfig,
        description="How teachers served over HTTP (teachers.<domain>: http://host:port/v1) are "
        "called: timeouts, retries, requests in flight.",
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
    world: WorldConfig = Field(
        default_factory=WorldConfig,
        description="The tiny world builtin: models come from, and its dials (teacher order "
        "consistency, student deficit, difficulty skew of the training list).",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_dtype(cls, data):
        # `dtype` (the model dtype, before precision existed): old run directories still load
        if isinstance(data, dict) and "dtype" in data:
            data = dict(data)
            legacy = {"float32": "fp32", "bfloat16": "bf16-pure", "float16": "fp16-mixed"}
            old = data.pop("dtype")
            if old in legacy and "precision" not in data:
                data["precision"] = legacy[old]
        return data

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
        for why, fields in pair_file_conflicts(self):  # training offline from a pair file
            raise conflict(why, *fields)
        for domain, ref in self.teachers.items():
            try:
                teacher = parse_teacher(ref)
            except ValueError as exc:
                raise conflict(str(exc), f"teachers.{domain}") from None
            problem = (
                None
                if teacher.is_self or teacher.is_server
                else model_ref_problem(teacher.model, paths=False)
            )
            if problem:
                raise conflict(problem, f"teachers.{domain}")
            if teacher.ema_decay is not None and self.student.lora is not None:
                # the average is taken parameter by parameter over the full weights, which a LoRA
                # student does not change: the teacher would silently stay the initial model
                raise conflict(
                    f"teachers.{domain} = {ref} averages the student's full weights, but "
                    "student.lora trains only an adapter: use `self`, or drop student.lora",
                    f"teachers.{domain}",
                    "student.lora",
                )
            missing = self.method.needs() & TEACHER_NEEDS - teacher_signals(teacher)
            if missing and self.method.needs_teacher():
                raise conflict(
                    f"method '{name}' needs {', '.join(sorted(map(str, missing)))} from its teacher, "
                    f"but teachers.{domain} = {ref} gives only "
                    f"{', '.join(sorted(map(str, teacher_signals(teacher))))}",
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
        for domain in self.teacher_tokenizers:
            if domain not in self.teachers:
                raise conflict(
                    f"teacher_tokenizers.{domain}: no teacher is named for domain {domain!r}",
                    f"teacher_tokenizers.{domain}",
                    "teachers",
                )
        models = [self.student.model, *self.teachers.values()]
        if not self.world.dials().is_default() and not any(
            m.startswith("builtin:") for m in models
        ):
            dials = self.world.dials_set()
            raise conflict(
                f"{', '.join(dials)} change the tiny world's built-in models, but this experiment "
                "names none (student and teachers are not builtin:)",
                dials[0].split(" ")[0],
                "student",
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


__all__ = [
    "DataConfig",
    "LoraConfig",
    "StudentConfig",
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
]
