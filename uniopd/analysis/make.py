"""`uniopd figures`: every figure and table from the runs it is pointed at, plus a manifest naming,
for each, the runs and the command it came from and what it rests on (seeds, steps, held-out
samples; each table says it in a line under it), the figures not drawn and why (no data, or a
variable that does not vary), and the runs left out and why.

    uniopd figures runs/study --sweeps runs/sweeps --teacher math=runs/study/teacher-math-eval.json \\
        --teacher code=runs/study/teacher-code-eval.json --out figures
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from uniopd.analysis.basis import basis, basis_line
from uniopd.analysis.claims import claims_markdown, claims_rows
from uniopd.analysis.claims_v2 import claims_v2_rows
from uniopd.analysis.claims_v2_table import write_claims_v2
from uniopd.analysis.figure_file import Skipped
from uniopd.analysis.figures import FIGURES
from uniopd.analysis.hallucination_table import hallucination_markdown, hallucination_rows
from uniopd.analysis.objective_table import objective_markdown, objective_rows, write_into
from uniopd.analysis.runs import Runs, combine, load_runs, load_wandb, without_sweeps
from uniopd.analysis.study_v2_data import study_v2_info
from uniopd.analysis.sweep_figures import fig_sweeps
from uniopd.analysis.tables import ablation_latex, ablation_markdown, ablation_rows, benchmark_table
from uniopd.labels import METHOD_ORDER


class NoRunsError(ValueError):
    """No finished run to draw or tabulate: `figures` and `report` refuse (exit 2) rather than
    write an empty folder that reads as a result. `left_out` says why each run found was left."""

    def __init__(self, message: str, left_out: list[tuple[str, str]]):
        super().__init__(message)
        self.left_out = left_out


def parse_teachers(specs: list[str]) -> dict[str, float]:
    """domain=<accuracy> (any teacher of that domain), or domain=<eval.json written by
    `uniopd eval ... --out>`, which names its model, so it applies to runs taught by that model."""
    out = {}
    for spec in specs:
        domain, _, value = spec.partition("=")
        try:
            out[domain] = float(value)
        except ValueError:
            doc = json.loads(Path(value).read_text())
            out[f"{doc['model']}|{domain}"] = doc["summary"][domain]["acc"]
    return out


def make_all(
    run_roots: list[str],
    out: Path,
    teachers: dict[str, float],
    sweep_roots: list[str] = (),
    results: Path | None = None,
    wandb_projects: list[str] = (),
) -> dict:
    """Everything into `out`; with `results` (docs/results.md), its objective-table block too.
    `wandb_projects` ("entity/project") are read back from wandb, alongside the run directories
    (a wandb project that cannot be read raises WandbSourceError before anything is drawn)."""
    start = time.perf_counter()
    mirrored = [load_wandb(p) for p in wandb_projects]  # first: a bad project fails at once
    # sweep trials feed the figures, not the tables
    runs = combine(load_runs([*run_roots, *sweep_roots]), *mirrored)
    sweep_dirs = [p.parent for root in sweep_roots for p in Path(root).rglob("summary.json")]
    if runs.info.empty and not sweep_dirs:  # before `out` is made: empty, it reads as a result
        sources = [*run_roots, *sweep_roots, *[f"wandb:{p}" for p in wandb_projects]]
        found = f"{len(runs.skipped)} found, none finished" if runs.skipped else "none found"
        raise NoRunsError(f"no finished runs in {', '.join(sources)} ({found})", runs.skipped)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in sys.argv)
    manifest = {
        "command": command,
        "runs_from": [*run_roots, *[f"wandb:{p}" for p in wandb_projects]],
        "teachers": teachers,
        "left_out": [{"run": r, "why": why} for r, why in runs.skipped],
        "figures": [],
        "missing": [],
        "skipped": [],
        "tables": [],
    }
    if len(runs.info):
        _draw_figures(runs, out, teachers, manifest)
    table_runs = without_sweeps(runs) if len(runs.info) else runs
    if table_runs.info.empty:  # only sweeps: they have their own figures, no tables
        manifest["missing"].append({"name": "tables", "why": "no finished run outside sweeps"})
    else:
        _write_tables(table_runs, out, teachers, results, manifest)
    for fig in fig_sweeps(sweep_dirs, out, runs):
        manifest["figures"].append(
            {"name": fig.name, "files": [Path(f).name for f in fig.files], "runs": fig.runs}
        )
    manifest["seconds"] = round(time.perf_counter() - start, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _draw_figures(runs: Runs, out: Path, teachers: dict[str, float], manifest: dict) -> None:
    """Every figure of FIGURES, each listed in the manifest as drawn (with what it rests on and
    its note), as missing (no data) or as skipped (what it compares does not vary)."""
    for fn in FIGURES:
        fig = fn(runs, out, teachers)
        name = fn.__name__.removeprefix("fig_")
        if fig is None:
            manifest["missing"].append({"name": name, "why": "the runs hold no data for it"})
        elif isinstance(fig, Skipped):
            manifest["skipped"].append({"name": name, "why": fig.why})
        else:
            manifest["figures"].append(
                {
                    "name": fig.name,
                    "files": [Path(f).name for f in fig.files],
                    "runs": fig.runs,
                    "basis": basis(runs, fig.runs),
                    **({"note": fig.note} if fig.note else {}),
                    **fig.extra,
                }
            )


def _write_tables(
    table_runs: Runs, out: Path, teachers: dict[str, float], results: Path | None, manifest: dict
) -> None:
    """The ablation, benchmark and objective tables (and the study's claims, when its runs are
    there) from the runs that are not sweep trials; with `results`, the objective table there too."""
    used = sorted(table_runs.info.run)
    methods = sorted(table_runs.info[table_runs.info.group.isin(METHOD_ORDER)].run)
    under, under_methods = basis_line(table_runs, used), basis_line(table_runs, methods)
    rows = ablation_rows(table_runs, teachers)
    (out / "ablation_table.md").write_text(_md(ablation_markdown(rows, teachers), under))
    (out / "ablation_table.tex").write_text(_tex(ablation_latex(rows, teachers), under))
    md, tex = benchmark_table(table_runs, teachers)
    (out / "benchmark_table.md").write_text(_md(md, under_methods))
    (out / "benchmark_table.tex").write_text(_tex(tex, under_methods))
    objectives = _md(objective_markdown(objective_rows(table_runs)), under)
    (out / "objective_table.md").write_text(objectives)
    if results is not None:
        write_into(results, objectives)
    manifest["tables"] += [
        {
            "name": "ablation_table",
            "files": ["ablation_table.md", "ablation_table.tex"],
            "runs": used,
        },
        {"name": "objective_table", "files": ["objective_table.md"], "runs": used},
        {
            "name": "benchmark_table",
            "files": ["benchmark_table.md", "benchmark_table.tex"],
            "runs": methods,
        },
    ]
    _hallucination_table(table_runs, out, manifest)
    for table in manifest["tables"]:
        table["basis"] = basis(table_runs, table["runs"])
    study = sorted(table_runs.info[table_runs.info.experiment.str.startswith("study-")].run)
    if study:  # the pre-registered study's claims, read by its rules
        claims = claims_markdown(claims_rows(table_runs, teachers))
        (out / "claims.md").write_text(_md(claims, basis_line(table_runs, study)))
        manifest["tables"].append(
            {
                "name": "claims",
                "files": ["claims.md"],
                "runs": study,
                "basis": basis(table_runs, study),
            }
        )
    _claims_v2(table_runs, out, manifest)


def _claims_v2(table_runs: Runs, out: Path, manifest: dict) -> None:
    """Study v2's claims (docs/study.md) when its runs (study2-*) are there; else listed missing."""
    used = sorted(study_v2_info(table_runs).run)
    if not used:
        manifest.setdefault("missing", []).append(
            {"name": "claims_v2", "why": "no study v2 runs (study2-*)"}
        )
        return
    files = write_claims_v2(claims_v2_rows(table_runs), out, basis_line(table_runs, used))
    manifest["tables"].append(
        {"name": "claims_v2", "files": files, "runs": used, "basis": basis(table_runs, used)}
    )


def _hallucination_table(table_runs: Runs, out: Path, manifest: dict) -> None:
    """SENTINEL's table, when runs evaluated the describe task (CHAIR and the rest)."""
    rows = hallucination_rows(table_runs)
    if not rows:
        return
    e = table_runs.evals
    used = sorted(e[e.domain == "describe"].run.unique())
    md = hallucination_markdown(rows)
    (out / "hallucination_table.md").write_text(_md(md, basis_line(table_runs, used)))
    manifest["tables"].append(
        {"name": "hallucination_table", "files": ["hallucination_table.md"], "runs": used}
    )


def _md(table: str, under: str) -> str:
    """A Markdown table with what it rests on in a line under it."""
    return f"{table}\n{under}\n"


def _tex(table: str, under: str) -> str:
    """A LaTeX tabular with what it rests on in a small line under it."""
    return f"{table}\\par\\smallskip{{\\footnotesize {_latex_text(under)}}}\n"


def _latex_text(text: str) -> str:
    for plain, latex in (
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("×", r"$\times$"),
        ("±", r"$\pm$"),
    ):
        text = text.replace(plain, latex)
    return text
