"""`uniopd figures` and `uniopd report`: the paper's figures and tables, and one HTML page, from
run directories (and, for figures, wandb projects read back with --wandb).

Both exit 2, writing nothing, when a folder named does not exist or no finished run is found.
`figures` writes to ./figures unless --out says otherwise: the shipped paper_figures/ is rewritten
only when named (`--out paper_figures/quickstart`), never by a default run from the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

from uniopd.terminal import fail

DEFAULT_OUT = "figures"


def shipped_figures() -> Path:
    """The repository's paper_figures/ beside the package (in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "paper_figures"


def _missing_roots(roots: list[str]) -> str | None:
    missing = [r for r in roots if not Path(r).exists()]
    return f"no such folder: {', '.join(missing)}" if missing else None


def _default_out_problem(out: str | None) -> str | None:
    """Why the default output folder may not be used here (None when it may): run from inside the
    shipped paper_figures/, ./figures would land among the shipped files."""
    if out is not None:
        return None  # named by the user: theirs to choose, paper_figures/ included
    here = Path(DEFAULT_OUT).resolve()
    if here.is_relative_to(shipped_figures()):
        return (
            f"the default --out {DEFAULT_OUT} is inside the shipped {shipped_figures()}; "
            "name the folder with --out (e.g. --out paper_figures/NAME to rewrite shipped figures)"
        )
    return None


def _no_runs(exc) -> int:
    for run, why in exc.left_out:
        print(f"  left out {run}: {why}", file=sys.stderr)
    return fail(str(exc))


def cmd_figures(args) -> int:
    if not args.runs and not args.wandb:
        return fail("figures: name run directories, or a wandb project with --wandb ENTITY/PROJECT")
    # checked before the analysis (pandas, matplotlib) is imported: bad input answers at once
    problem = _missing_roots([*args.runs, *args.sweeps]) or _default_out_problem(args.out)
    if problem:
        return fail(f"figures: {problem}")
    from uniopd.analysis.make import NoRunsError, make_all, parse_teachers
    from uniopd.analysis.objective_table import results_page_problem
    from uniopd.analysis.runs import WandbSourceError

    # checked before any figure is drawn: a bad page must not cost the whole run of `figures`
    page = results_page_problem(Path(args.results)) if args.results else None
    if page:
        return fail(f"--results {page}")
    out = Path(args.out or DEFAULT_OUT)
    try:
        manifest = make_all(
            args.runs,
            out,
            parse_teachers(args.teacher),
            args.sweeps,
            Path(args.results) if args.results else None,
            args.wandb,
        )
    except WandbSourceError as exc:
        return fail(f"--wandb {exc}")
    except NoRunsError as exc:
        return _no_runs(exc)
    print(
        f"uniopd: {len(manifest['figures'])} figures, {len(manifest['tables'])} tables in {out} "
        f"({manifest['seconds']} s); missing: {[m['name'] for m in manifest['missing']] or 'none'}; "
        f"not drawn (nothing varies): {[m['name'] for m in manifest['skipped']] or 'none'}; "
        f"runs left out: {len(manifest['left_out'])}",
        file=sys.stderr,
    )
    for item in manifest["skipped"]:
        print(f"  not drawn {item['name']}: {item['why']}", file=sys.stderr)
    for item in manifest["left_out"]:
        print(f"  left out {item['run']}: {item['why']}", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    problem = _missing_roots([*args.runs, *args.sweeps])
    if problem:
        return fail(f"report: {problem}")
    from uniopd.analysis.make import NoRunsError, parse_teachers
    from uniopd.analysis.report import write_report

    try:
        info = write_report(args.runs, Path(args.out), parse_teachers(args.teacher), args.sweeps)
    except NoRunsError as exc:
        return _no_runs(exc)
    print(
        f"uniopd: report {args.out} ({info['figures']} figures, {info['bytes'] // 1024} KiB; "
        f"{len(info['left_out'])} runs left out)",
        file=sys.stderr,
    )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "figures", help="the paper's figures, tables and a manifest from runs (into ./figures)"
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
    p.add_argument(
        "--out",
        default=None,
        help=f"output folder (default: ./{DEFAULT_OUT}); the shipped figures are rewritten only "
        "when named, e.g. --out paper_figures/quickstart",
    )
    p.add_argument(
        "--results",
        help="also write the objective comparison table into this Markdown "
        "page, between its objective-table markers (docs/results.md)",
    )
    p.set_defaults(fn=cmd_figures)

    p = sub.add_parser("report", help="one self-contained HTML page comparing the runs")
    p.add_argument("runs", nargs="+", help="run directories or folders of them")
    p.add_argument("--sweeps", nargs="*", default=[], help="sweep folders (with summary.json)")
    p.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="domain=<accuracy> or domain=<eval.json from `uniopd eval --out`>",
    )
    p.add_argument("--out", default="report.html", help="the HTML file (default: ./report.html)")
    p.set_defaults(fn=cmd_report)
