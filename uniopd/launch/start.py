"""The one way a run starts, for `uniopd run`, `uniopd group` and sweep trials:

    experiment config -> plan (every input check, before any model) -> run directory with the
    resolved config -> missing built-in models built -> uniopd.loop.runner (models, offline
    balancing, trainer) -> train

The world builder enters at uniopd.loop.runner: its models are what gets built.
"""

from __future__ import annotations

import logging
from pathlib import Path

from uniopd.config import ExperimentConfig, save_resolved
from uniopd.engine.distributed import Dist
from uniopd.engine.loading import pick_device
from uniopd.loop.runner import prepare
from uniopd.loop.trainer import Trainer
from uniopd.run_dir import RunDir
from uniopd.setup.parts import builtin_refs, connect_served_teachers
from uniopd.setup.plan import Plan, PlanError, make_plan
from uniopd.storage.writable import FolderNotWritable, check_writable
from uniopd.world.paths import is_built, world_dir

log = logging.getLogger(__name__)


def build_models(refs) -> None:
    """Build every missing `builtin:` model among `refs` in one go (side by side)."""
    names = [r.removeprefix("builtin:") for r in refs if r.startswith("builtin:")]
    if names:
        from uniopd.builder.build import build_missing

        build_missing(names)


def check_storage(cfg: ExperimentConfig, plan: Plan | None = None, run: Path | None = None):
    """Every folder the run will write, before any model loads or world builds: the output root
    (the run directory `run`, resuming), and $UNIOPD_HOME when the `plan`'s tiny-world models must
    be copied or built there. A PlanError (exit code 2) names the folder and why."""
    try:
        if run is None:
            check_writable(cfg.output.root, "output.root")
        else:
            check_writable(run, "the run directory")
        if plan is not None:
            cfg.world.select()  # the world of this run (a group plans several before starting)
        refs = builtin_refs(plan) if plan is not None else []
        missing = [r for r in refs if not is_built(r.removeprefix("builtin:"))]
        if missing:
            what = f"$UNIOPD_HOME, where {', '.join(missing)} must be copied or built,"
            check_writable(world_dir(), what)
    except FolderNotWritable as exc:
        raise PlanError(str(exc)) from exc


def create_run(cfg: ExperimentConfig, plan: Plan | None = None) -> RunDir:
    """The run directory with the resolved config; with the `plan`, first a word with every
    served teacher, so that one that is down stops the run before a directory exists."""
    check_storage(cfg, plan)
    if plan is not None:
        connect_served_teachers(plan)
    run = RunDir.create(cfg.output.root, cfg.name)
    save_resolved(cfg, run.path / "config.yaml")
    return run


def process_world(cfg: ExperimentConfig) -> Dist:
    """This process among the run's data-parallel processes (alone when not launched), whose
    collectives wait at most `distributed_timeout_s` for the others."""
    return Dist.from_env(
        cpu=pick_device(cfg.device).type == "cpu", timeout_s=cfg.distributed_timeout_s
    )


def start_run(
    cfg: ExperimentConfig,
    *,
    plan: Plan | None = None,
    run: RunDir | None = None,
    on_eval=None,
    on_step=None,
    dist: Dist | None = None,
) -> tuple[RunDir, dict]:
    """Train `cfg` into a new run directory (or `run`, made by `create_run`); (run, final eval).
    `plan`, when the caller checked the config already, saves reading the data twice."""
    plan = plan or make_plan(cfg)  # all input checks happen here, before the run directory exists
    run = run or create_run(cfg, plan)
    trainer = prepare(plan, run, build=build_models, dist=dist)
    trainer.on_eval, trainer.on_step = on_eval, on_step
    return run, trainer.train()


def resume_trainer(path: Path, cfg: ExperimentConfig, dist: Dist | None = None) -> Trainer:
    """The trainer of run directory `path`, at its newest usable checkpoint."""
    plan = make_plan(cfg)
    check_storage(cfg, plan, path)
    return prepare(plan, RunDir(path), resume=True, build=build_models, dist=dist)
