"""`uniopd run`: a fresh run or a resumed one, in this process or in N data-parallel processes
(`--nproc`, started through uniopd.launch.multiprocess; `accelerate launch -m uniopd run` lands here too,
once per process)."""

from __future__ import annotations

import sys
from pathlib import Path

from uniopd.terminal import fail as _fail
from uniopd.terminal import load as _load
from uniopd.terminal import print_eval as _print_eval


def cmd_run(args) -> int:
    from uniopd.launch.start import create_run, process_world, start_run
    from uniopd.setup.plan import make_plan

    if args.nproc < 1:
        return _fail(f"run: --nproc {args.nproc}: needs at least one process")
    if args.resume:
        extra = [args.experiment, *args.overrides] if args.experiment else args.overrides
        return _resume(Path(args.resume), extra, args.nproc)
    if not args.experiment:
        return _fail("run: name an experiment file, or --resume runs/<name>")
    cfg = _load(args.experiment, args.overrides)
    if args.into:  # a process started by --nproc: the first process made the run directory
        return _train_into(Path(args.into), cfg)
    processes = args.nproc if args.nproc > 1 else None
    plan = make_plan(cfg, processes)  # every input check, before the run directory exists
    dist = process_world(cfg) if processes is None else None
    if dist is not None and dist.active:  # started by accelerate launch: one run directory
        run_path = dist.broadcast_object(str(create_run(cfg, plan).path) if dist.is_main else None)
        return _train_into(Path(run_path), cfg, plan, dist)
    run = create_run(cfg, plan)
    print(f"uniopd: run directory {run.path}", file=sys.stderr)
    if processes:
        from uniopd.launch.multiprocess import relaunch

        print(f"uniopd: {processes} processes", file=sys.stderr)
        return relaunch(processes, ["run", str(run.path / "config.yaml"), "--into", str(run.path)])
    _, final = start_run(cfg, plan=plan, run=run)
    _print_eval(final)
    return 0


def _train_into(path: Path, cfg, plan=None, dist=None) -> int:
    from uniopd.launch.start import process_world, start_run
    from uniopd.run_dir import RunDir

    dist = dist or process_world(cfg)
    _, final = start_run(cfg, plan=plan, run=RunDir(path), dist=dist)
    dist.close()
    if dist.is_main:
        _print_eval(final)
    return 0


def _resume(path: Path, extra: list[str], nproc: int = 1) -> int:
    from uniopd.analysis.runs import planned_steps
    from uniopd.launch.start import process_world, resume_trainer
    from uniopd.setup.plan import make_plan

    if extra:
        return _fail(
            f"run --resume {path}: takes no experiment file or overrides ({' '.join(extra)}); "
            "a resumed run keeps the config it was started with"
        )
    if not (path / "config.yaml").is_file():
        return _fail(f"run --resume {path}: not a run directory (no config.yaml)")
    cfg = _load(str(path / "config.yaml"), [])
    marker = path / "checkpoints" / "latest"
    steps = planned_steps(str(path), cfg.train.steps)  # data_epochs runs count theirs at start
    if marker.exists() and marker.read_text().strip() == f"step_{steps:06d}":
        print(f"uniopd: {path} already finished all {steps} steps", file=sys.stderr)
        return 0
    if nproc > 1:
        from uniopd.launch.multiprocess import relaunch

        make_plan(cfg, nproc)  # every input check of a fresh start, before any process starts
        return relaunch(nproc, ["run", "--resume", str(path)])
    dist = process_world(cfg)
    try:
        trainer = resume_trainer(path, cfg, dist)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    if dist.is_main:
        print(f"uniopd: resuming {path} at step {trainer.step}", file=sys.stderr)
    final = trainer.train()
    dist.close()
    if dist.is_main:
        _print_eval(final)
    return 0
