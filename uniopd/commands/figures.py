"""`uniopd figures` and `uniopd report`: the paper's figures and tables, and one HTML page, from
run directories (and, for figures, wandb projects read back with --wandb)."""

from __future__ import annotations

import sys
from pathlib import Path

from uniopd.terminal import fail


def cmd_figures(args) -> int:
    from uniopd.analysis.make import make_all, parse_teachers
    from uniopd.analysis.objective_table import results_page_problem
    from uniopd.analysis.runs import WandbSourceError

    if not args.runs and not args.wandb:
        return fail("figures: name run directories, or a wandb project with --wandb ENTITY/PROJECT")
    # checked before any figure is drawn: a bad page must not cost the whole run of `figures`
    problem = results_page_problem(Path(args.results)) if args.results else None
    if problem:
        return fail(f"--results {problem}")
    try:
        manifest = make_all(
            args.runs,
            Path(args.out),
            parse_teachers(args.teacher),
            args.sweeps,
            Path(args.results) if args.results else None,
            args.wandb,
        )
    except WandbSourceError as exc:
        return fail(f"--wandb {exc}")
    print(
        f"uniopd: {len(manifest['figures'])} figures, {len(manifest['tables'])} tables in {args.out} "
        f"({manifest['seconds']} s); missing: {[m['name'] for m in manifest['missing']] or 'none'}; "
        f"runs left out: {len(manifest['left_out'])}",
        file=sys.stderr,
    )
    for item in manifest["left_out"]:
        print(f"  left out {item['run']}: {item['why']}", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    from uniopd.analysis.make import parse_teachers
    from uniopd.analysis.report import write_report

    info = write_report(args.runs, Path(args.out), parse_teachers(args.teacher), args.sweeps)
    print(
        f"uniopd: report {args.out} ({info['figures']} figures, {info['bytes'] // 1024} KiB; "
        f"{len(info['left_out'])} runs left out)",
        file=sys.stderr,
    )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "figures", help="regenerate paper_figures/ (figures, tables, manifest) from runs"
    )
    p.add_argument("runs", nargs="*", help="run directories or folders of them")
    p.add_argument("--sweeps", nargs="*", default=[], help="sweep folders (with summary.json)")
    p.add_argument(
        "--wandb",
        action="append",
        default=[],
        metavar="ENTITY/PROJECT",
        help="also read the runs of this wandb project back (online, with your login); repeatable",
    )
    p.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="domain=<accuracy> or domain=<eval.json from `uniopd eval --out`>",
    )
    p.add_argument("--out", default="paper_figures")
    p.add_argument(
        "--results",
        help="also write the objective comparison table into this Markdown "
        "page, between its objective-table markers (docs/results.md)",
    )
    p.set_defaults(fn=cmd_figures)

    p = sub.add_parser("report", help="one self-contained HTML page comparing the runs")
    p.add_argument("runs", nargs="+", help="run directories or folders of them")
    p.add_argument("--sweeps", nargs="*", default=[])
    p.add_argument("--teacher", action="append", default=[])
    p.add_argument("--out", default="report.html")
    p.set_defaults(fn=cmd_report)
