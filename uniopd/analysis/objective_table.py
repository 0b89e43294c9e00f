"""The objective comparison: one row per experiment (objective and recipe), the final held-out
accuracy per domain (mean ± sample std over seeds, per-seed values, best in bold) and the wall
time of a training step (mean over steps, then over seeds), from run directories only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from uniopd.analysis.runs import Runs

# the rows in the order methods are usually compared: distillation objectives, the recipe, RL
ORDER = ("OPD", "JSD", "forward KL", "reverse KL", "top-K", "OPSD", "ExOPD", "Uni-OPD", "GRPO")
START, END = "<!-- objective-table:start -->", "<!-- objective-table:end -->"


def objective_rows(runs: Runs) -> list[dict]:
    e = runs.evals
    final = e[e.step == e.groupby("run").step.transform("max")]
    start = e[e.step == 0].groupby("domain").acc.mean()
    domains = sorted(final.domain.unique())
    steps = runs.metrics.groupby(["experiment", "run"])["time/step"].mean()
    rank = {g: i for i, g in enumerate(ORDER)}
    info = runs.info.drop_duplicates("experiment")
    rows = []
    other = ORDER.index("Uni-OPD") - 0.5  # OPD + some components: before the full recipe and RL
    for _, first in sorted(
        info.iterrows(), key=lambda r: (rank.get(r[1].group, other), r[1].experiment)
    ):
        exp = first.experiment
        row = {"experiment": exp, "method": first.group, "objective": first.method, "domains": {}}
        for d in domains:
            x = final[(final.experiment == exp) & (final.domain == d)].sort_values("seed")
            if len(x):
                row["domains"][d] = (
                    float(x.acc.mean()),
                    float(x.acc.std(ddof=1)) if len(x) > 1 else 0.0,
                    [round(float(v), 3) for v in x.acc],
                )
        sec = steps.loc[exp] if exp in steps.index.get_level_values(0) else pd.Series(dtype=float)
        row["seeds"] = int(final[final.experiment == exp].run.nunique())
        row["step_s"] = (float(sec.mean()), float(sec.std(ddof=1)) if len(sec) > 1 else 0.0)
        rows.append(row)
    return [{**r, "start": {d: float(start[d]) for d in domains if d in start}} for r in rows]


def objective_markdown(rows: list[dict]) -> str:
    domains = sorted({d for r in rows for d in r["domains"]})
    best = {d: max(r["domains"][d][0] for r in rows if d in r["domains"]) for d in domains}
    head = ["method", "experiment", "seeds", *[f"{d} (per seed)" for d in domains], "s / step"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = []
        for d in domains:
            if d not in r["domains"]:
                cells.append("—")
                continue
            mean, std, per_seed = r["domains"][d]
            text = f"{mean:.3f} ± {std:.3f}"
            text = f"**{text}**" if abs(mean - best[d]) < 1e-12 else text
            cells.append(f"{text} ({', '.join(f'{v:.3f}' for v in per_seed)})")
        mean_s, std_s = r["step_s"]
        lines.append(
            f"| {r['method']} | {r['experiment']} | {r['seeds']} | "
            + " | ".join(cells)
            + f" | {mean_s:.2f} ± {std_s:.2f} |"
        )
    if rows and rows[0].get("start"):
        starts = ", ".join(f"{d} {v:.3f}" for d, v in sorted(rows[0]["start"].items()))
        lines.append(f"\nStart (step 0, mean over runs): {starts}.")
    return "\n".join(lines) + "\n"


def results_page_problem(path: Path) -> str | None:
    """Why `path` cannot take the objective table (None when it can)."""
    if not path.is_file() or not all(m in path.read_text() for m in (START, END)):
        return (
            f"{path}: not a page with a {START} ... {END} block to write the objective table into"
        )
    return None


def write_into(path: Path, table: str) -> None:
    """Replace the block between the objective-table markers of a Markdown page (docs/results.md)."""
    problem = results_page_problem(path)
    if problem:
        raise ValueError(problem)
    text = path.read_text()
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    path.write_text(f"{before}{START}\n{table}{END}{after}")
