"""`uniopd figures`: every figure and table of paper_figures/ from the runs it is pointed at, plus a
manifest naming, for each, the runs and the command it came from, and the runs left out and why.

    uniopd figures runs/study --sweeps runs/sweeps --teacher math=runs/study/teacher-math-eval.json \\
        --teacher code=runs/study/teacher-code-eval.json --out paper_figures
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from uniopd.analysis.claims import claims_markdown, claims_rows
from uniopd.analysis.figures import FIGURES, fig_sweeps
from uniopd.analysis.objective_table import objective_markdown, objective_rows, write_into
from uniopd.analysis.runs import Runs, combine, load_runs, load_wandb, without_sweeps
from uniopd.analysis.tables import ablation_latex, ablation_markdown, ablation_rows, benchmark_table


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
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in sys.argv)
    manifest = {
        "command": command,
        "runs_from": [*run_roots, *[f"wandb:{p}" for p in wandb_projects]],
        "teachers": teachers,
        "left_out": [{"run": r, "why": why} for r, why in runs.skipped],
        "figures": [],
        "missing": [],
        "tables": [],
    }
    if runs.info.empty:
        manifest["missing"].append({"name": "everything", "why": "no finished runs"})
    else:
        _draw_figures(runs, out, teachers, manifest)
        _write_tables(without_sweeps(runs), out, teachers, results, manifest)
    sweep_dirs = [p.parent for root in sweep_roots for p in Path(root).rglob("summary.json")]
    for fig in fig_sweeps(sweep_dirs, out):
        manifest["figures"].append(
            {"name": fig.name, "files": [Path(f).name for f in fig.files], "runs": fig.runs}
        )
    manifest["seconds"] = round(time.perf_counter() - start, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _draw_figures(runs: Runs, out: Path, teachers: dict[str, float], manifest: dict) -> None:
    """Every figure of FIGURES, each listed in the manifest as drawn or as missing."""
    for fn in FIGURES:
        fig = fn(runs, out, teachers)
        name = fn.__name__.removeprefix("fig_")
        if fig is None:
            manifest["missing"].append({"name": name, "why": "the runs hold no data for it"})
        else:
            manifest["figures"].append(
                {
                    "name": fig.name,
                    "files": [Path(f).name for f in fig.files],
                    "runs": fig.runs,
                    **fig.extra,
                }
            )


def _write_tables(
    table_runs: Runs, out: Path, teachers: dict[str, float], results: Path | None, manifest: dict
) -> None:
    """The ablation, benchmark and objective tables (and the study's claims, when its runs are
    there) from the runs that are not sweep trials; with `results`, the objective table there too."""
    rows = ablation_rows(table_runs, teachers)
    (out / "ablation_table.md").write_text(ablation_markdown(rows, teachers))
    (out / "ablation_table.tex").write_text(ablation_latex(rows, teachers))
    md, tex = benchmark_table(table_runs, teachers)
    (out / "benchmark_table.md").write_text(md)
    (out / "benchmark_table.tex").write_text(tex)
    objectives = objective_markdown(objective_rows(table_runs))
    (out / "objective_table.md").write_text(objectives)
    if results is not None:
        write_into(results, objectives)
    used = sorted(table_runs.info.run)
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
            "runs": sorted(
                table_runs.info[table_runs.info.group.isin(["OPD", "Uni-OPD", "GRPO"])].run
            ),
        },
    ]
    study = sorted(table_runs.info[table_runs.info.experiment.str.startswith("study-")].run)
    if study:  # the pre-registered study's claims, read by its rules
        (out / "claims.md").write_text(claims_markdown(claims_rows(table_runs, teachers)))
        manifest["tables"].append({"name": "claims", "files": ["claims.md"], "runs": study})
