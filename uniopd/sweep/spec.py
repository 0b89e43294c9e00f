"""The sweep file (`sweeps/*.yaml`): a base experiment, a search space over config fields, the
sampler, the objective, trials, seeds per trial and a pruner. Checked before any trial starts:
every field of the space must exist in the experiment schema and accept its values, and the
objective must be a metric the runs log.

Each trial's config is, in order: the `base:` experiment file (relative to the sweep file), the
sweep file's `overrides:` (dotted field=value, as on a command line), the overrides given to
`uniopd sweep` after the file, then the space's values, the seed and the trial's name.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from uniopd.config import load_experiment, strict_yaml
from uniopd.config.load import ConfigError
from uniopd.config.schema import ExperimentConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Section):
    type: Literal["float", "int", "categorical"] = Field(description="Kind of the parameter.")
    low: float | None = Field(default=None, description="Lower bound (float / int).")
    high: float | None = Field(default=None, description="Upper bound (float / int).")
    log: bool = Field(default=False, description="Sample on a log scale.")
    step: float | None = Field(default=None, description="Grid step (needed by the grid sampler).")
    choices: list[Any] | None = Field(
        default=None, description="Values of a categorical parameter."
    )

    @model_validator(mode="after")
    def _complete(self) -> Param:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} parameter needs low <= high")
        return self

    def bounds(self) -> tuple[float, float]:
        """(low, high) of a numeric parameter; the validator has checked both are given."""
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs low <= high")
        return self.low, self.high

    def options(self) -> list[Any]:
        """The choices of a categorical parameter; the validator has checked they are given."""
        if not self.choices:
            raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        return self.choices

    def grid(self) -> list:
        if self.type == "categorical":
            return list(self.options())
        if self.step is None:
            raise ValueError("the grid sampler needs 'step' on every numeric parameter")
        low, high = self.bounds()
        n = int(round((high - low) / self.step)) + 1
        values = [low + i * self.step for i in range(n)]
        return (
            [int(round(v)) for v in values]
            if self.type == "int"
            else [round(v, 10) for v in values]
        )

    def candidates(self) -> list:
        """Values the schema must accept: the ends of the range, or every choice."""
        if self.type == "categorical":
            return list(self.options())
        low, high = self.bounds()
        return [int(low), int(high)] if self.type == "int" else [low, high]


class Sampler(_Section):
    kind: Literal["tpe", "random", "grid"] = Field(default="tpe", description="Optuna sampler.")
    seed: int = Field(default=0, description="Sampler seed.")


class Objective(_Section):
    metric: str = Field(
        default="eval.mean.acc",
        description="eval.<domain|mean>.<acc|avg@N|pass@k> of the final held-out evaluation.",
    )
    direction: Literal["maximize", "minimize"] = Field(
        default="maximize", description="Optimisation direction."
    )


class Pruner(_Section):
    kind: Literal["median", "none"] = Field(
        default="median", description="Stop trials below the median at an evaluation."
    )
    warmup_evals: int = Field(
        default=1, ge=0, description="Evaluations reported before pruning may start."
    )
    startup_trials: int = Field(
        default=2, ge=0, description="Finished trials needed before pruning."
    )


class Heartbeat(_Section):
    interval: int = Field(
        default=5, ge=1, description="Seconds between a running trial's heartbeats."
    )
    grace: int = Field(
        default=20,
        ge=1,
        description="Seconds without a heartbeat before a trial is stale and re-queued.",
    )
    max_retry: int = Field(
        default=2, ge=0, description="Times one trial may be re-queued after its worker died."
    )


class SweepSpec(_Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9._-]+$", description="Study name; also the output folder name."
    )
    description: str = Field(default="", description="What the sweep asks.")
    base: str = Field(
        description="Experiment file each trial starts from (relative to the sweep file)."
    )
    overrides: list[str] = Field(
        default=[],
        description="Dotted field=value overrides of the base experiment for every trial, e.g. "
        "[train.steps=10, calibration.margin_shift=true]; overrides given to `uniopd sweep` on "
        "the command line come after these, the space's values after both.",
    )
    space: dict[str, Param] = Field(min_length=1, description="Dotted config field -> parameter.")
    sampler: Sampler = Field(default_factory=Sampler, description="How trials are proposed.")
    objective: Objective = Field(default_factory=Objective, description="What a trial scores.")
    trials: int | None = Field(
        default=None,
        ge=1,
        description="Finished trials wanted (grid: default its size). As with Optuna's MaxTrialsCallback, "
        "N parallel workers racing for the last slots may finish up to N-1 more.",
    )
    seeds: list[int] = Field(
        default=[0], min_length=1, description="Seeds per trial; the score is their mean."
    )
    pruner: Pruner = Field(default_factory=Pruner, description="Early stopping of weak trials.")
    heartbeat: Heartbeat = Field(default_factory=Heartbeat, description="Dead-worker detection.")
    output: str = Field(
        default="runs/sweeps",
        description="Folder (from the working directory) that holds <name>/: trials, storage, summary.",
    )

    def n_trials(self) -> int:
        if self.trials:
            return self.trials
        if self.sampler.kind == "grid":
            return len(list(itertools.product(*(p.grid() for p in self.space.values()))))
        raise ValueError("trials: required unless the sampler is grid")


class LoadedSweep(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    spec: SweepSpec
    path: Path
    base_path: Path
    root: Path  # <output>/<name>
    domains: list[str]


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> LoadedSweep:
    """Read and check a sweep file, with `overrides` (the command line's) after its own;
    every problem is a ConfigError naming the file and field."""
    path = Path(path)
    try:
        raw = strict_yaml.load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), "-", f"cannot read the sweep file: {exc}") from exc
    try:
        spec = SweepSpec.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            str(path), ".".join(str(x) for x in err["loc"]) or "-", err["msg"]
        ) from exc
    spec.overrides = [*spec.overrides, *overrides]
    base = (path.parent / spec.base).resolve()
    if not base.is_file():
        raise ConfigError(str(path), "base", f"experiment file '{base}' not found")
    cfg = load_experiment(base, spec.overrides)
    for field, param in spec.space.items():
        for value in param.candidates():
            try:
                load_experiment(base, [*spec.overrides, f"{field}={_text(value)}"])
            except ConfigError as exc:
                raise ConfigError(
                    str(path), f"space.{field}", f"value {value!r} is refused: {exc.reason}"
                ) from exc
    if spec.sampler.kind == "grid":
        try:
            [p.grid() for p in spec.space.values()]
        except ValueError as exc:
            raise ConfigError(str(path), "sampler.kind", str(exc)) from exc
    try:
        spec.n_trials()
    except ValueError as exc:
        raise ConfigError(str(path), "trials", str(exc)) from exc
    from uniopd.setup.plan import make_plan

    domains = make_plan(cfg).domains
    _check_metric(path, spec.objective.metric, domains, cfg)
    return LoadedSweep(
        spec=spec,
        path=path,
        base_path=base,
        root=(Path(spec.output) / spec.name).resolve(),  # like output.root: from the cwd
        domains=domains,
    )


def _check_metric(path: Path, metric: str, domains: list[str], cfg: ExperimentConfig) -> None:
    parts = metric.split(".")
    keys = {"acc", f"avg@{cfg.eval.n_samples}", *(f"pass@{k}" for k in cfg.eval.pass_k)}
    if (
        len(parts) != 3
        or parts[0] != "eval"
        or parts[1] not in ("mean", *domains)
        or parts[2] not in keys
    ):
        raise ConfigError(
            str(path),
            "objective.metric",
            f"'{metric}' is not a metric the runs log; use eval.<domain>.<key> with domain in "
            f"{['mean', *domains]} and key in {sorted(keys)}",
        )


def objective_value(metric: str, summary: dict) -> float:
    """The objective from one evaluation summary (a line of eval.jsonl)."""
    _, domain, key = metric.split(".")
    if domain == "mean":
        values = [v[key] for v in summary.values() if isinstance(v, dict) and key in v]
        return sum(values) / len(values)
    return float(summary[domain][key])


def _text(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
