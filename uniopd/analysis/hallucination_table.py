"""SENTINEL's comparison on the describe task: one row per method, the final evaluation's
hallucination figures (CHAIR_i, the share of mentioned objects that are not in the picture;
CHAIR_s, the share of descriptions with one), how many of the picture's objects are named
(recall), the describe outcome and the counting accuracy, each mean ± sample std over seeds,
the one best per column in bold (lowest for the CHAIR columns). From run directories only."""

from __future__ import annotations

import pandas as pd

from uniopd.analysis.basis import pm, unique_best
from uniopd.analysis.runs import Runs
from uniopd.labels import method_rank

DOMAIN = "describe"
# (column in the eval table, header, lower is better)
COLUMNS = (
    ("chair_i", "CHAIR_i ↓", True),
    ("chair_s", "CHAIR_s ↓", True),
    ("recall", "recall ↑", False),
    ("acc", "describe acc ↑", False),
    ("count_accuracy", "count acc ↑", False),
)


def hallucination_rows(runs: Runs) -> list[dict]:
    """Per experiment on the describe domain: its method, seeds, and per column (mean, std, n);
    the student before training as the first row (the step-0 evaluation, over every run)."""
    e = runs.evals
    if e.empty or "chair_i" not in e or DOMAIN not in set(e.domain):
        return []
    d = e[e.domain == DOMAIN]
    final = d[d.step == d.groupby("run").step.transform("max")]
    rows = []
    start = d[d.step == 0]
    if len(start):
        rows.append({"method": "student before training", "seeds": int(start.run.nunique())})
        rows[-1].update({col: _stats(start[col]) for col, _, _ in COLUMNS if col in start})
    groups = runs.info.set_index("run").group
    for exp, x in sorted(
        final.groupby("experiment"), key=lambda g: method_rank(groups[g[1].run.iloc[0]])
    ):
        row = {"method": groups[x.run.iloc[0]], "experiment": exp, "seeds": int(x.run.nunique())}
        row.update({col: _stats(x[col]) for col, _, _ in COLUMNS if col in x})
        rows.append(row)
    return rows


def hallucination_markdown(rows: list[dict]) -> str:
    methods = [r for r in rows if "experiment" in r]
    best = {
        col: unique_best({i: (-1 if low else 1) * r[col][0] for i, r in enumerate(methods)})
        for col, _, low in COLUMNS
        if all(col in r for r in methods)
    }
    lines = [
        "| method | seeds | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for r in rows:
        cells = [r["method"], str(r["seeds"])]
        for col, _, _ in COLUMNS:
            if col not in r:
                cells.append("—")
                continue
            text = pm(*r[col])
            at = methods.index(r) if r in methods else None
            cells.append(f"**{text}**" if at is not None and best.get(col) == at else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _stats(values: pd.Series) -> tuple[float, float | None, int]:
    """(mean, sample std, n) of the runs' values; the std of one value is None."""
    per_run = values.astype(float)
    n = len(per_run)
    return float(per_run.mean()), (float(per_run.std(ddof=1)) if n > 1 else None), n
