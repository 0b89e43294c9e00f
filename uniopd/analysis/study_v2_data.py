"""Study v2's runs (docs/study.md) read as the numbers its claims use: each run's cell, its final
held-out accuracy per domain in points, the steps its evaluation curve takes to reach teacher level
per domain (C5), and its order consistency after calibration (C4). claims_v2.py reads these.

A run's cell comes from its experiment name, study2-<folder>-<cell>: the queue
(benchmarks/study_v2_queue.py) names runs study2-f0-shift_only-s3, `uniopd group` names them from
the files (study2-f0-shift-only-s3); both read as the cell f0/shift_only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uniopd.analysis.runs import Runs

PREFIX = "study2-"
FOLDERS = ("f0.6", "f0", "skew", "online", "horizon")  # f0.6 before f0: read by prefix
DOMAINS = ("math", "code")
# C5's teacher level: the expert's pass rate at horizon 8 minus 5 points (docs/world.md)
TEACHER_LEVEL = {"math": 0.96, "code": 0.65}
NEVER_REACHED = 2  # a run that never reaches teacher level counts as this many times its budget

# seeds each cell is planned to run (docs/study.md, amendment 2026-12-07; the queue's CELLS):
# C1's and C4's cells at 20, the other 30-step cells at 12, the horizon cells at 4
_AT_20 = {"f0/opd", "f0/uniopd", "f0.6/opd", "f0.6/uniopd", "f0.6/shift_only", "f0.6/bonus"}


def planned_seeds(cell: str) -> int:
    return 20 if cell in _AT_20 else 4 if cell.startswith("horizon/") else 12


def cell_of(experiment: str) -> str | None:
    """ "study2-f0.6-shift-only" -> "f0.6/shift_only"; None for a run outside study v2."""
    if not isinstance(experiment, str) or not experiment.startswith(PREFIX):
        return None
    rest = experiment.removeprefix(PREFIX)
    for folder in FOLDERS:
        if rest.startswith(folder + "-"):
            return f"{folder}/{rest.removeprefix(folder + '-').replace('-', '_')}"
    return None


def study_v2_info(runs: Runs) -> pd.DataFrame:
    """The run table of study v2's runs, with their `cell`."""
    info = runs.info
    if info.empty or "experiment" not in info:
        return pd.DataFrame(columns=["run", "seed", "steps", "cell"])
    cells = info.experiment.map(cell_of)
    return info[cells.notna()].assign(cell=cells[cells.notna()])


def final_points(runs: Runs) -> pd.DataFrame:
    """Per study v2 run and domain: the last evaluation's accuracy (avg@4) in points
    (columns cell, seed, domain, value)."""
    info = study_v2_info(runs)
    e = runs.evals
    if info.empty or e.empty:
        return pd.DataFrame(columns=["cell", "seed", "domain", "value"])
    e = e[e.run.isin(info.run)]
    last = e[e.step == e.groupby("run").step.transform("max")]
    out = last.merge(info[["run", "cell"]], on="run")[["cell", "run", "domain", "acc"]]
    out = out.merge(info[["run", "seed"]], on="run")
    return out.assign(value=100.0 * out.acc.astype(float))[["cell", "seed", "domain", "value"]]


def steps_to_teacher(runs: Runs) -> pd.DataFrame:
    """Per horizon run and domain: the first evaluated step whose accuracy reaches the domain's
    teacher level; a run that never reaches it counts as 2 × its budget (columns cell, seed,
    domain, value, reached)."""
    info = study_v2_info(runs)
    info = info[info.cell.str.startswith("horizon/")]
    rows = []
    for _, run in info.iterrows():
        e = runs.evals[runs.evals.run == run.run]
        for domain, level in TEACHER_LEVEL.items():
            curve = e[e.domain == domain].groupby("step").acc.mean()
            if curve.empty:
                continue
            at = curve[curve >= level - 1e-9].index
            step = float(at.min()) if len(at) else float(NEVER_REACHED * int(run.steps))
            rows.append((run.cell, run.seed, domain, step, bool(len(at))))
    return pd.DataFrame(rows, columns=["cell", "seed", "domain", "value", "reached"])


def order_after(runs: Runs, cell: str) -> tuple[float, int]:
    """(mean over the cell's runs of each run's mean order/consistency_after, runs that logged
    it): the share of pairs in order once calibration acted (C4's second condition)."""
    info = study_v2_info(runs)
    picked = info[info.cell == cell].run
    m, col = runs.metrics, "order/consistency_after"
    if m.empty or col not in m or picked.empty:
        return float("nan"), 0
    m = m[m.run.isin(picked)]
    per_run = pd.to_numeric(m[col], errors="coerce").groupby(m.run).mean().dropna()
    return (float(per_run.mean()) if len(per_run) else float("nan")), len(per_run)


def per_seed(table: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    """{(cell, domain): values by seed}, with each cell's two-domain "mean" on the seeds that have
    both domains; a seed run twice gives its mean."""
    if table.empty:
        return {}
    wide = table.pivot_table("value", "seed", ["cell", "domain"], "mean").astype(float)
    out = {key: wide[key].dropna() for key in wide.columns}
    for cell in {c for c, _ in out}:
        if all((cell, d) in out for d in DOMAINS):
            both = pd.concat([out[(cell, d)] for d in DOMAINS], axis=1).dropna()
            out[(cell, "mean")] = both.mean(axis=1)
    return out


def log2_steps(table: pd.DataFrame) -> pd.DataFrame:
    """C5 reads steps on a log2 scale (a difference is log2 of a ratio); a run at teacher level
    before any step counts as one step, so that the log stays finite."""
    return table.assign(value=np.log2(np.maximum(table.value.astype(float), 1.0)))
