"""`uniopd run`: a fresh run or a resumed one, in this process or in N data-parallel processes
(`--nproc`, started through uniopd.launch.multiprocess; `accelerate launch -m uniopd run` lands here too,
once per process).

How a run ends (docs/faults.md): 0 finished; 2 bad input, before any compute (an output root or
$UNIOPD_HOME that cannot be written included); 3 a write of the run directory failed for space or
I/O; 4 preempted (SIGTERM or SIGUSR1) after writing a checkpoint. After 3 and 4 the message names
the checkpoint and the `uniopd run --resume` command that continues from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from uniopd.terminal import fail as _fail
from uniopd.terminal import load as _load
from uniopd.terminal import print_eval as _print_eval


def cmd_run(args) -> int:
    from uniopd.launch.multiprocess import announce, exit_code
    from uniopd.loop import preemption

    announce()
    with preemption.handling():  # SIGTERM / SIGUSR1 stop the run after a checkpoint
        return exit_code(_run(args))


def _run(args) -> int:
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
    return _ended(run.path, lambda: start_run(cfg, plan=plan, run=run)[1])


def _train_into(path: Path, cfg, plan=None, dist=None) -> int:
    from uniopd.launch.start import process_world, start_run
    from uniopd.run_dir import RunDir

    dist = dist or process_world(cfg)
    return _ended(path, lambda: start_run(cfg, plan=plan, run=RunDir(path), dist=dist)[1], dist)


def _ended(path: Path, train, dist=None) -> int:
    """Trains and says how it ended: the held-out summary, or what stopped the run and the
    command that continues it (printed by the first process)."""
    from uniopd.loop.preemption import EXIT_PREEMPTED, Preempted
    from uniopd.storage.faults import EXIT_STORAGE_FAULT, StorageFault

    main, nproc = dist is None or dist.is_main, 1 if dist is None else dist.world
    try:
        final = train()
    except StorageFault as fault:  # the peers, waiting on this process, are stopped by the agent
        if main:
            verb = "once the disk has room (or works) again, continue with"
            _say(f"error: {fault}. {_continue(path, nproc, verb)}")
        return EXIT_STORAGE_FAULT
    except Preempted as stop:
        if dist is not None:
            dist.close()  # every process stopped after the same step: they leave together
        if main:
            _say(f"{stop.signal_name}: stopped after step {stop.step}. {_continue(path, nproc)}")
        return EXIT_PREEMPTED
    if dist is not None:
        dist.close()
    if main:
        _print_eval(final)
    return 0


def _continue(path: Path, nproc: int, verb: str = "continue with") -> str:
    from uniopd.run_dir import RunDir

    newest = RunDir(path).newest_checkpoint()
    if newest is None:
        return "No checkpoint was written yet: start the run again with the same command."
    more = f" --nproc {nproc}" if nproc > 1 else ""
    return f"The newest intact checkpoint is {newest}; {verb}: uniopd run --resume {path}{more}"


def _say(message: str) -> None:
    print(f"uniopd: {message}", file=sys.stderr)


def _resume(path: Path, extra: list[str], nproc: int = 1) -> int:
    from uniopd.analysis.runs import planned_steps
    from uniopd.launch.start import check_storage, process_world, resume_trainer
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

        # every input check of a fresh start, before any process starts
        check_storage(cfg, make_plan(cfg, nproc), path)
        return relaunch(nproc, ["run", "--resume", str(path)])
    dist = process_world(cfg)

    def resumed() -> dict:
        trainer = resume_trainer(path, cfg, dist)
        if dist.is_main:
            print(f"uniopd: resuming {path} at step {trainer.step}", file=sys.stderr)
        return trainer.train()

    try:
        return _ended(path, resumed, dist if dist.active else None)
    except FileNotFoundError as exc:  # no usable checkpoint
        return _fail(str(exc))
