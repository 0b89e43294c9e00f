"""Study v2's figures (docs/study.md): each claim's paired differences with their 95 % intervals
against the ±Δ band, C3's gradient share per ratio cell, and C5's accuracy curves at horizon 8
against the teacher level. figures.py lists them in FIGURES; with no study2- runs each is missing.

    uniopd figures paper_figures/study_v2/study_v2.parquet --out paper_figures/study_v2
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from uniopd.analysis.basis import basis_line  # noqa: E402
from uniopd.analysis.claims_v2 import CLAIMS, NOT_RUN, claims_v2_rows  # noqa: E402
from uniopd.analysis.figure_file import Figure, save_figure  # noqa: E402
from uniopd.analysis.runs import Runs  # noqa: E402
from uniopd.analysis.study_v2_data import TEACHER_LEVEL, study_v2_info  # noqa: E402

DOMAIN_COLOURS = {"math": "C0", "code": "C1", "mean": "0.45"}
RATIO_CELLS = ("online/no_control", "online/r0.5", "online/r1.0", "online/r2.0", "online/rinf")
HORIZON_CELLS = ("horizon/opd", "horizon/uniopd", "horizon/grpo")
SHARE = "balance/grad_share_correct"


def _panel(ax, rows: list[dict], title: str) -> None:
    """One claim's (or the explanatory cells') differences as horizontal intervals, one line per
    difference and domain, with the ±Δ band and the null line."""
    y, labels = 0, []
    for r in rows:
        for d in r["differences"]:
            if d["n"] == 0:
                continue
            low, high = d["ci_low"], d["ci_high"]
            err = [[d["mean"] - low], [high - d["mean"]]] if math.isfinite(low) else None
            ax.errorbar(d["mean"], y, xerr=err, fmt="o", color=DOMAIN_COLOURS[r["domain"]])
            labels.append(f"{d['label']} ({r['domain']}, n {d['n']})")
            y += 1
    first = rows[0]
    if first["bound"]:
        ax.axvspan(-first["bound"], first["bound"], color="0.85", zorder=0, label="±Δ")
    ax.axvline(first["null"], color="k", lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.invert_yaxis()
    if not labels:
        ax.text(0.5, 0.5, NOT_RUN, ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=8)
    steps = first["unit"] == "log2 steps"
    ax.set_xlabel("log2(GRPO's steps / the method's)" if steps else "difference (points)")


def _verdicts(rows: list[dict]) -> str:
    return ", ".join(f"{r['domain']} {r['verdict']}" for r in rows if r["domain"] != "mean")


def _saved(fig, out: Path, name: str, runs: Runs, used: list, **extra) -> Figure:
    """The figure saved under `name` with the line saying which runs it rests on."""
    return Figure(name, save_figure(fig, out, name, basis_line(runs, used)), used, **extra)


def fig_claims_v2_effects(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    info = study_v2_info(runs)
    if info.empty:
        return None
    rows = claims_v2_rows(runs)
    groups = [[r for r in rows if r["kind"] == "claim" and r["claim"] == c.name] for c in CLAIMS]
    groups.append([r for r in rows if r["kind"] == "explanatory"])
    fig, axes = plt.subplots(len(groups), 1, figsize=(7.5, 2.2 * len(groups)), squeeze=False)
    for ax, group in zip(axes[:, 0], groups):
        name = group[0]["claim"] if group[0]["kind"] == "claim" else "flaw 0, each cell − OPD"
        verdicts = _verdicts(group) if group[0]["kind"] == "claim" else "explanatory"
        _panel(ax, group, f"{name}: {verdicts}")
    fig.suptitle("Study v2: paired differences, 95 % intervals and the ±Δ band")
    fig.tight_layout()
    return _saved(
        fig, out, "claims_v2_effects", runs, sorted(info.run), extra={"numbers": "claims_v2.json"}
    )


def fig_study_v2_grad_share(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    """C3's mechanism: the correct rollouts' share of the loss's gradient weight (each run's mean
    over its steps) per ratio cell."""
    info = study_v2_info(runs)
    info = info[info.cell.isin(RATIO_CELLS)]
    m = runs.metrics
    if info.empty or m.empty or SHARE not in m:
        return None
    m = m[m.run.isin(info.run)]
    share = pd.to_numeric(m[SHARE], errors="coerce").groupby(m.run).mean().dropna()
    if share.empty:
        return None
    at = info.set_index("run").cell.reindex(share.index)
    cells = [c for c in RATIO_CELLS if c in set(at)]
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for x, cell in enumerate(cells):
        values = share[at == cell]
        ax.scatter([x] * len(values), values, alpha=0.5, color="C0")
        ax.plot([x - 0.25, x + 0.25], [values.mean()] * 2, color="k")
    ax.set_xticks(range(len(cells)), [c.removeprefix("online/") for c in cells])
    ax.set(ylabel="gradient share of correct rollouts", title="C3: gradient share per ratio cell")
    return _saved(fig, out, "study_v2_grad_share", runs, sorted(share.index))


def fig_study_v2_horizon(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    """C5: held-out accuracy against step per method at horizon 8 (each seed thin, the mean over
    seeds thick), with the teacher level steps are counted to."""
    info = study_v2_info(runs)
    info = info[info.cell.isin(HORIZON_CELLS)]
    e = runs.evals
    if info.empty or e.empty:
        return None
    e = e[e.run.isin(info.run)].merge(info[["run", "cell"]], on="run")
    fig, axes = plt.subplots(1, len(TEACHER_LEVEL), figsize=(9, 3.4), squeeze=False)
    for ax, (domain, level) in zip(axes[0], TEACHER_LEVEL.items()):
        at = e[e.domain == domain]
        for i, cell in enumerate(c for c in HORIZON_CELLS if c in set(at.cell)):
            mine = at[at.cell == cell]
            for _, curve in mine.groupby("run"):
                ax.plot(curve.step, curve.acc, color=f"C{i}", alpha=0.25, lw=0.8)
            mean = mine.groupby("step").acc.mean()
            ax.plot(mean.index, mean.values, color=f"C{i}", lw=2, label=cell.split("/")[1])
        ax.axhline(level, color="k", ls="--", lw=0.8, label="teacher level")
        ax.set(title=domain, xlabel="step", ylabel="held-out accuracy")
        ax.legend(fontsize=7)
    fig.suptitle("C5: accuracy against step at horizon 8")
    fig.tight_layout()
    return _saved(fig, out, "study_v2_horizon", runs, sorted(info.run))
