"""`uniopd plan FILE [field=value ...] [--gpu h100|h200|GiB] [--nproc N] [--config ROLE=PATH]`:
the per-GPU memory of a run, term by term, from each model's config.json alone (no weights, no
data); exit code 2 when it does not fit the GPU, naming the largest terms and what to change."""

from __future__ import annotations

import sys
from pathlib import Path

from uniopd.terminal import fail as _fail
from uniopd.terminal import load as _load


def named_configs(pairs: list[str]) -> dict[str, Path]:
    """--config ROLE=PATH pairs (ROLE: student, or a teacher's domain) as a dict."""
    from uniopd.setup.plan_images import PlanError

    out = {}
    for pair in pairs:
        role, sep, path = pair.partition("=")
        if not sep or not role or not path:
            raise PlanError(f"--config {pair!r}: expected ROLE=path/to/config.json")
        out[role] = Path(path)
    return out


def plan_file(path: str, overrides: list[str], gpu: str | None, nproc: int, named: list[str]):
    """(the memory plan, its table) of the experiment file at `path`."""
    from uniopd.setup.gpu_cards import DEFAULT_CARD, card_bytes, file_card
    from uniopd.setup.memory_plan import make_memory_plan, render

    cfg = _load(path, overrides)
    card = card_bytes(gpu or file_card(Path(path)) or DEFAULT_CARD)
    plan = make_memory_plan(cfg, card, nproc, named_configs(named))
    return plan, render(plan)


def cmd_plan(args) -> int:
    from uniopd.setup.memory_plan import refusal

    plan, table = plan_file(args.experiment, args.overrides, args.gpu, args.nproc, args.config)
    print(f"{args.experiment}\n{table}")
    sys.stdout.flush()
    return 0 if plan.fits else _fail(f"{args.experiment}: {refusal(plan)}")


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="the per-GPU memory of a run, before any weight loads")
    p.add_argument("experiment")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.fsdp=true")
    p.add_argument(
        "--gpu",
        help="h100, h200, a100, ... or a size in GiB (default: the file's `# gpu:` line, else h100)",
    )
    p.add_argument("--nproc", type=int, default=1, help="processes, one per GPU (default 1)")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="ROLE=PATH",
        help="a config.json for the student (student=...) or a domain's teacher (math=...) "
        "whose folder is not on this machine",
    )
    p.set_defaults(fn=cmd_plan)
