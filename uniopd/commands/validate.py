"""`uniopd validate FILES [--no-models] [--nproc N]`: every check a run makes before compute
(schema, cross-field rules, data, processes), then, unless --no-models, the student's and
teachers' tokenizers (vocabulary, chat-template bridges), without loading any weights."""

from __future__ import annotations

from uniopd.commands import overrides
from uniopd.terminal import load as _load


def cmd_validate(args) -> int:
    from uniopd.commands.group import expand
    from uniopd.setup.memory_plan import check_memory
    from uniopd.setup.plan import check_checkpoints, make_plan

    for path in expand(args.experiments):
        if path.name.startswith("_"):  # a partial base is only complete through a file naming it
            print(f"--  {path}  (partial base, checked through the files that inherit it)")
            continue
        cfg = _load(str(path), args.overrides)
        make_plan(cfg, args.nproc, models=not args.no_models)
        notes = [] if args.no_models else check_checkpoints(cfg)
        notes.append(check_memory(cfg, path, args.nproc))  # weights-free: config.json shapes
        checked = "schema, data" if args.no_models else "schema, data, tokenizers"
        print(f"ok  {path}  ({cfg.method.name}, {cfg.train.length()}; {checked})")
        for note in notes:
            print(f"    note: {note}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="check experiment files and their data, no compute")
    p.add_argument(
        "experiments",
        nargs="+",
        metavar="FILE|FOLDER|FIELD=VALUE",
        help="experiment files, or folders of them; then dotted overrides applied to each, "
        "e.g. train.steps=3 (as `uniopd run` takes them)",
    )
    overrides.add_set_flag(p)
    p.add_argument(
        "--no-models",
        action="store_true",
        help="open no checkpoint: schema, cross-field rules and data only (for a machine without "
        "the models); by default the tokenizers are read too (vocabulary, chat templates)",
    )
    p.add_argument(
        "--nproc", type=int, default=1, help="the processes the run will have (default 1)"
    )
    p.set_defaults(fn=cmd_validate, pooled=("experiments",))
