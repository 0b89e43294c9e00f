"""The `uniopd` command line.

    uniopd run experiments/quickstart.yaml [field=value ...]   train; writes runs/<name>/
    uniopd run --resume runs/<name>                             continue from the last checkpoint
    uniopd eval experiments/quickstart.yaml [field=value ...]  held-out eval of `student`
    uniopd eval runs/quickstart                                 held-out eval of a run's final model
    uniopd group experiments/ablations --seeds 0 1 2            every file of a study, several seeds
    uniopd sweep sweeps/margin_delta.yaml --workers 2           Optuna sweep; --storage postgresql://...
    uniopd dashboard sweeps/margin_delta.yaml                   optuna-dashboard on 127.0.0.1
    uniopd figures runs/study --out paper_figures               the paper's figures and tables from runs
    uniopd figures --wandb ENTITY/PROJECT                       ... from a wandb project's runs
    uniopd board runs/study                                     a live TensorBoard over the runs
    uniopd workspace ENTITY/PROJECT                             a saved wandb view of the comparison
    uniopd report runs/study --out report.html                  a self-contained HTML dashboard
    uniopd merge runs/<name>/checkpoints/step_N --out merged    a LoRA adapter merged into its base
    uniopd validate experiments/*.yaml [--no-models]            check files, no compute
    uniopd plan experiments/x.yaml [--gpu h100|h200|GiB]        per-GPU memory, no weights
    uniopd fields                                               every experiment field with its help
    uniopd list [objectives|verifiers|sources|balancers|calibrators]   every registered name
    uniopd world build | info [--from FILE] [--teacher-flaw F] [--deficit K]   the tiny world
    uniopd serve-teacher MODEL --port P                         a teacher's log-probs over HTTP

Every command that reads experiment files takes dotted overrides the same way: `field=value`
arguments after (or among) the files, or `--set field=value` (uniopd/commands/overrides.py).
Library warnings and access logs are left out; -v (before or after the command) shows them.

Bad input (a malformed experiment file, an unknown domain, a missing teacher, a broken checkpoint)
exits with code 2 and one message naming the file, the field and the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings

from uniopd.board import command as board_command
from uniopd.board import wandb_workspace
from uniopd.commands import figures as figures_command
from uniopd.commands import overrides as overrides_arg
from uniopd.commands import plan as plan_command
from uniopd.commands import serve as serve_command
from uniopd.commands import validate as validate_command
from uniopd.commands import world as world_command
from uniopd.commands.checkpoints import cmd_eval, cmd_merge
from uniopd.commands.run import cmd_run
from uniopd.terminal import fail as _fail


def cmd_group(args) -> int:
    from uniopd.commands.group import run_group
    from uniopd.launch.placement import from_flags

    try:
        gpus = from_flags(args.gpus, args.gpus_per_run)
    except ValueError as exc:
        return _fail(f"group: {exc}")
    runs = run_group(args.targets, args.seeds, args.overrides, gpus)
    failed = [r for r in runs if "failed" in r]
    if failed:
        names = ", ".join(f"{r['name']} (exit {r['failed']})" for r in failed)
        print(f"uniopd: group: {len(failed)} run(s) failed: {names}", file=sys.stderr)
        return 1
    return 0


def cmd_sweep(args) -> int:
    from uniopd.launch.placement import from_flags
    from uniopd.sweep import run_sweep

    try:
        gpus = from_flags(args.gpus, args.gpus_per_run)
    except ValueError as exc:
        return _fail(f"sweep: {exc}")
    workers = args.workers if args.workers is not None else len(gpus) if gpus else 1
    if gpus and workers != len(gpus):
        return _fail(
            f"sweep: --workers {workers} but --gpus {args.gpus} makes {len(gpus)} GPU sets; "
            "with --gpus there is one worker per set (leave out --workers)"
        )
    if not args.verbose:  # Optuna flags the API it marks experimental, once per call
        from optuna.exceptions import ExperimentalWarning

        warnings.simplefilter("ignore", ExperimentalWarning)
    before = os.environ.get("UNIOPD_VERBOSE")
    os.environ["UNIOPD_VERBOSE"] = "1" if args.verbose else "0"  # the workers' own filter
    try:
        summary = run_sweep(args.sweep, workers, args.storage, gpus, args.overrides)
    finally:
        os.environ.pop("UNIOPD_VERBOSE")
        if before is not None:
            os.environ["UNIOPD_VERBOSE"] = before
    print(json.dumps(summary, indent=1, default=str))
    return 0


def _add_gpu_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--gpus",
        metavar="IDS",
        help=f"GPU ids, e.g. 0,1,2,3: one {what} per GPU set at a time, each worker process "
        "seeing only its set (CUDA_VISIBLE_DEVICES)",
    )
    p.add_argument(
        "--gpus-per-run",
        type=int,
        metavar="K",
        help="GPUs in each set (default 1): --gpus 0,1,2,3 --gpus-per-run 2 makes sets 0,1 and 2,3",
    )


def cmd_dashboard(args) -> int:
    from uniopd.commands.dashboard import serve
    from uniopd.sweep.run import storage_url
    from uniopd.sweep.spec import load_sweep

    loaded = load_sweep(args.sweep)
    url = storage_url(loaded, args.storage)
    if args.storage is None and not (loaded.root / "study.db").is_file():
        return _fail(
            f"dashboard: {args.sweep} has no study yet ({loaded.root / 'study.db'} does not "
            f"exist): start it with `uniopd sweep {args.sweep}`, or give --storage"
        )
    return serve(url, args.port, args.verbose)


def cmd_fields(args) -> int:
    from uniopd.commands.deferred import deferred

    with deferred("torch"):  # describing the fields makes no tensor (deferred.py)
        from uniopd.commands.catalogue import option_rows
        from uniopd.config import describe_fields

        rows = [*describe_fields(), *option_rows()]
    for name, typ, default, help_text in rows:
        print(f"{name:32} {typ:28} default={default:12} {help_text}")
    return 0


def cmd_list(args) -> int:
    from uniopd.commands.deferred import deferred

    with deferred("torch"):
        from uniopd.commands.catalogue import listing

        lines = listing(args.registry)
    print("\n".join(lines))
    return 0


def _add_run_parsers(sub) -> None:
    """Training and evaluating one experiment: run, eval, merge."""
    p = sub.add_parser("run", help="train as an experiment file says")
    p.add_argument("experiment", nargs="?")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue runs/<name> from its newest usable checkpoint"
    )
    p.add_argument("overrides", nargs="*", help=overrides_arg.HELP)
    overrides_arg.add_set_flag(p)
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes (one per GPU), started with accelerate's launcher",
    )
    p.add_argument("--into", help=argparse.SUPPRESS)  # set by --nproc for the processes it starts
    p.set_defaults(fn=cmd_run, pooled=("experiment", "overrides"))

    p = sub.add_parser("eval", help="held-out evaluation of an experiment's student or a run")
    p.add_argument(
        "target", help="experiment file, or a run directory (uses its latest checkpoint)"
    )
    p.add_argument("overrides", nargs="*", help=overrides_arg.HELP)
    overrides_arg.add_set_flag(p)
    p.add_argument("--out", help="write the summary and every sample to this JSON file")
    p.set_defaults(fn=cmd_eval, pooled=("target", "overrides"))

    p = sub.add_parser("merge", help="fold a LoRA run's adapter into a plain HF checkpoint")
    p.add_argument("checkpoint", help="a LoRA checkpoint, runs/<name>/checkpoints/step_XXXXXX")
    p.add_argument("--out", required=True, help="folder for the merged model and tokenizer")
    p.add_argument(
        "--base",
        help="the base model (a path or builtin:<name>); default: the one the adapter names",
    )
    p.set_defaults(fn=cmd_merge)


def _add_study_parsers(sub) -> None:
    """Many runs at once: group, sweep, and the sweep's dashboard."""
    p = sub.add_parser("group", help="run several experiment files over several seeds")
    p.add_argument(
        "targets",
        nargs="+",
        metavar="FILE|FOLDER|FIELD=VALUE",
        help="experiment files, or folders of them; then dotted overrides applied to every run, "
        "e.g. train.steps=30",
    )
    p.set_defaults(fn=cmd_group, pooled=("targets",))  # before --seeds: it reads `pooled`
    p.add_argument(
        "--seeds",
        nargs="+",
        default=[0],
        action=overrides_arg.SeedsThenOverrides,
        metavar="SEED",
        help="one run per seed (default: 0); overrides may follow the seeds",
    )
    overrides_arg.add_set_flag(p)
    _add_gpu_flags(p, "run")

    p = sub.add_parser(
        "sweep", help="an Optuna sweep over experiment fields, with parallel workers"
    )
    p.add_argument("sweep", help="sweeps/<name>.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        help="dotted overrides applied to every trial after the sweep file's own `overrides:` "
        "(e.g. train.steps=10); the space's fields are set after both",
    )
    overrides_arg.add_set_flag(p)
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes on this machine (default 1; with --gpus, one per GPU set)",
    )
    p.add_argument(
        "--storage",
        help="study storage URL (default: SQLite beside the trials); "
        "postgresql://... lets workers on several machines join one study",
    )
    _add_gpu_flags(p, "worker")
    p.set_defaults(fn=cmd_sweep, pooled=("sweep", "overrides"))

    p = sub.add_parser("dashboard", help="optuna-dashboard on a sweep's storage, on 127.0.0.1")
    p.add_argument("sweep", help="sweeps/<name>.yaml")
    p.add_argument("--storage", help="study storage URL (default: the sweep's SQLite file)")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.set_defaults(fn=cmd_dashboard)


def _add_catalogue_parsers(sub) -> None:
    """What an experiment file can name: fields, list."""
    from uniopd.commands.catalogue import REGISTRIES

    p = sub.add_parser("fields", help="list every experiment-file field with its help")
    p.set_defaults(fn=cmd_fields)

    p = sub.add_parser(
        "list",
        help="every registered objective, verifier, data source, "
        "balancer and calibrator (built-in and plugins), with help and options",
    )
    p.add_argument(
        "registry",
        nargs="?",
        choices=list(REGISTRIES),
        help="show only this registry",
    )
    p.set_defaults(fn=cmd_list)


VERBOSE_HELP = "debug logging, library warnings and access logs (left out by default)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uniopd", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    # -v after the command too (`uniopd board runs -v`); SUPPRESS keeps a -v given before it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    sub = _Subcommands(parser.add_subparsers(dest="command", required=True), verbose)
    _add_run_parsers(sub)
    _add_study_parsers(sub)
    figures_command.add_parser(sub)
    validate_command.add_parser(sub)
    plan_command.add_parser(sub)
    board_command.add_parser(sub)
    wandb_workspace.add_parser(sub)
    _add_catalogue_parsers(sub)
    serve_command.add_parser(sub)
    world_command.add_parser(sub)
    return parser


class _Subcommands:
    """The subparsers action, every command made with the shared -v flag."""

    def __init__(self, action, verbose: argparse.ArgumentParser):
        self.action, self.verbose = action, verbose

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self.action.add_parser(name, parents=[self.verbose], **kwargs)


def _quiet_libraries(verbose: bool) -> None:
    """Left out unless -v: chatty loggers, and the warnings libraries print for their own
    deprecations (they name no setting the user can change)."""
    for noisy in ("httpx", "urllib3", "filelock", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        for category in (DeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        # TensorBoard imports setuptools' pkg_resources, which announces its own removal
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    _quiet_libraries(args.verbose)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    problem = overrides_arg.pool(args)
    if problem:
        return _fail(problem)
    try:
        return args.fn(args)
    except Exception as exc:
        if _is_bad_input(exc):
            return _fail(str(exc))
        raise


# the errors that mean bad input (exit 2, one message, no traceback), by module: looked up only
# once one is raised, so a command that never loads the model code (list, fields) never imports it
BAD_INPUT = {
    "uniopd.config.load": "ConfigError",
    "uniopd.data.errors": "DataError",
    "uniopd.setup.plan_images": "PlanError",
    "uniopd.engine.loading": "ModelLoadError",
    "uniopd.registry": "RegistryError",
    "uniopd.engine.vision": "VisionError",
}


def _is_bad_input(exc: Exception) -> bool:
    """One of BAD_INPUT's errors; a module not imported yet cannot have raised its own."""
    return any(
        module in sys.modules and isinstance(exc, getattr(sys.modules[module], name))
        for module, name in BAD_INPUT.items()
    )


if __name__ == "__main__":
    sys.exit(main())
