"""One grammar for overrides, in every command that reads experiment files:

    uniopd run experiments/quickstart.yaml train.lr=3e-4 seed=2
    uniopd validate experiments/ablations train.steps=3        # a file list, then overrides
    uniopd group experiments/ablations train.steps=30 --seeds 0 1
    uniopd sweep sweeps/margin_delta.yaml train.steps=10
    uniopd eval runs/quickstart eval.n_samples=4

An argument with '=' in it that is not an existing file or folder is a dotted override
`field=value`; the others are the files. `--set field=value` says the same where a name could
be read either way (a file whose name holds '='). Overrides apply in the order given, after the
file and its `base:` chain.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "dotted overrides field=value applied after the file, e.g. train.lr=3e-4 seed=2 "
    "(`uniopd fields` lists the fields)"
)
SET_HELP = "an override, as FIELD=VALUE (the same as a positional one; repeatable)"


def is_override(arg: str) -> bool:
    """`train.lr=3e-4`: has a '=' before any path separator and names no existing path."""
    key, eq, _ = arg.partition("=")
    return bool(eq) and "/" not in key and not Path(arg).exists()


def split(args: list[str]) -> tuple[list[str], list[str]]:
    """(targets, overrides) of a mixed positional list, each in the order given."""
    targets = [a for a in args if not is_override(a)]
    return targets, [a for a in args if is_override(a)]


def add_set_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="set_overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=SET_HELP,
    )


class SeedsThenOverrides(argparse.Action):
    """`--seeds 0 1 2 train.steps=30`: a list option takes every word after it, so an override
    written after the seeds would be read as a seed. The seeds are the integers; the rest go back
    to the command's pooled words (`pooled[0]`), as if written before the option."""

    def __call__(self, parser, namespace, values, option_string=None):
        seeds = [v for v in values if v.lstrip("-").isdigit()]
        rest = [v for v in values if v not in seeds]
        if not seeds or any(not is_override(v) for v in rest):
            wrong = next((v for v in rest if not is_override(v)), option_string)
            parser.error(f"{option_string}: {wrong!r} is not a seed (an integer) or FIELD=VALUE")
        setattr(namespace, self.dest, [int(v) for v in seeds])
        pooled = namespace.pooled[0]
        setattr(namespace, pooled, [*(getattr(namespace, pooled, None) or []), *rest])


def pool(args: argparse.Namespace) -> str | None:
    """Sort the positional arguments of a command that takes overrides into its target(s) and
    `args.overrides`; the message when the targets are not what it takes."""
    names = getattr(args, "pooled", None)
    if not names:
        return None
    items: list[str] = []
    for name in names:
        value = getattr(args, name)
        items += value if isinstance(value, list) else [value] if value else []
    targets, pooled = split(items)
    args.overrides = [*pooled, *args.set_overrides]
    first = names[0]
    if isinstance(getattr(args, first), list):  # a list of files: group, validate
        setattr(args, first, targets)
        return None if targets else f"{args.command}: name at least one file or folder"
    if len(targets) > 1:
        return f"{args.command}: takes one file, got {' '.join(targets)}"
    setattr(args, first, targets[0] if targets else None)
    if not targets and args.command != "run":  # run --resume takes no file
        return f"{args.command}: name the file (got only overrides: {' '.join(pooled)})"
    return None
