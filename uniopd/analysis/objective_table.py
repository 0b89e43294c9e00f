"""The objective comparison: one row per experiment (objective and recipe), the final held-out
accuracy per domain (mean ± sample std over seeds, per-seed values, the one best in bold: a tie
has none), and the time a method spends: a training step (mean over steps, then over seeds), the
offline difficulty estimate before step 1 (Uni-OPD's; its own column, not hidden in the steps)
and the whole run's training seconds with it. From run directories only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from uniopd.analysis.basis import pm, unique_best
from uniopd.analysis.runs import Runs
from uniopd.labels import PREFERENCE_METHODS

# the rows in the order methods are usually compared: distillation objectives, the recipe, RL
ORDER = (
    ("OPD", "JSD", "forward KL", "reverse KL", "top-K", "OPSD", "ExOPD", "Uni-OPD", "GRPO")
    + PREFERENCE_METHODS  # after RL, as uniopd.labels lists them
)
START, END = "<!-- objective-table:start -->", "<!-- objective-table:end -->"


def _rank(group: str) -> float:
    """ORDER's place; a variant ("Omni-DPO w/o w_qual", "DPO (pair file)") right after its method;
    OPD with some of the recipe's components before the full recipe and RL."""
    for i, name in enumerate(ORDER):
        if group == name:
            return i
        if group.startswith(name + " w/o") or group.startswith(name + " ("):
            return i + 0.25
    return ORDER.index("Uni-OPD") - 0.5


def objective_rows(runs: Runs) -> list[dict]:
    e = runs.evals
    final = e[e.step == e.groupby("run").step.transform("max")]
    start = e[e.step == 0].groupby("domain").acc.mean()
    domains = sorted(final.domain.unique())
    steps = runs.metrics.groupby(["experiment", "run"])["time/step"].mean()
    # wall_s counts the offline estimate in (runs.py); its last value is the run's training time
    total = runs.metrics.groupby(["experiment", "run"]).wall_s.max()
    offline = runs.info.groupby("experiment").offline_s.agg(list)
    info = runs.info.drop_duplicates("experiment")
    rows = []
    for _, first in sorted(info.iterrows(), key=lambda r: (_rank(r[1].group), r[1].experiment)):
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
        whole = total.loc[exp] if exp in total.index.get_level_values(0) else pd.Series([])
        row["total_s"] = (float(whole.mean()), float(whole.std(ddof=1)) if len(whole) > 1 else 0.0)
        row["offline_s"] = [float(s) for s in offline.get(exp, [])]
        rows.append(row)
    return [{**r, "start": {d: float(start[d]) for d in domains if d in start}} for r in rows]


def objective_markdown(rows: list[dict]) -> str:
    domains = sorted({d for r in rows for d in r["domains"]})
    best = {
        d: unique_best({i: r["domains"][d][0] for i, r in enumerate(rows) if d in r["domains"]})
        for d in domains
    }
    head = [
        "method",
        "experiment",
        "seeds",
        *[f"{d} (per seed)" for d in domains],
        "s / step",
        "offline estimate s",
        "training s (all phases)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows):
        cells = []
        for d in domains:
            if d not in r["domains"]:
                cells.append("—")
                continue
            mean, std, per_seed = r["domains"][d]
            text = pm(mean, std, len(per_seed))
            text = f"**{text}**" if best[d] == i else text
            seeds = f" ({', '.join(f'{v:.3f}' for v in per_seed)})" if len(per_seed) > 1 else ""
            cells.append(text + seeds)
        n = r["seeds"]
        lines.append(
            f"| {r['method']} | {r['experiment']} | {n} | "
            + " | ".join(cells)
            + f" | {pm(*r['step_s'], n, digits=2)} | {_offline_cell(r['offline_s'])} | "
            + f"{pm(*r['total_s'], n, digits=0)} |"
        )
    if rows and rows[0].get("start"):
        starts = ", ".join(f"{d} {v:.3f}" for d, v in sorted(rows[0]["start"].items()))
        lines.append(f"\nStart (step 0, mean over runs): {starts}.")
    return "\n".join(lines) + "\n"


def _offline_cell(seconds: list[float]) -> str:
    """The estimate's seconds per run: "—" when the method makes none, "not recorded" for runs
    from before difficulty/estimate.json (their training seconds then leave it out)."""
    if not seconds or all(s == 0 for s in seconds):
        return "—"
    if any(s != s for s in seconds):  # NaN
        return "not recorded"
    return pm(sum(seconds) / len(seconds), pd.Series(seconds).std(ddof=1), len(seconds), digits=1)


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
