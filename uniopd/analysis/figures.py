"""The paper's figures from logged runs. Every function has the same shape,

    fig_<name>(runs: Runs, out: Path, teachers: dict[str, float]) -> Figure | None

and writes <out>/<name>.png and .pdf, captioned with what it rests on (seeds, steps, held-out
samples: basis.py); None means the runs hold no data for it, Skipped that what it compares does not
vary (the manifest says which and why). Curves that coincide are named on the axes (curves.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from uniopd.analysis.basis import basis_line  # noqa: E402
from uniopd.analysis.cells import alike, online_ratio_cells, with_world  # noqa: E402
from uniopd.analysis.claims_v2_figures import (  # noqa: E402
    fig_claims_v2_effects,
    fig_study_v2_grad_share,
    fig_study_v2_horizon,
)
from uniopd.analysis.curves import coinciding, mark_coinciding  # noqa: E402
from uniopd.analysis.figure_file import Figure, save_figure  # noqa: E402
from uniopd.analysis.runs import Runs, teacher_accuracy  # noqa: E402
from uniopd.analysis.study_figures import fig_dial_effects, fig_gain_vs_order  # noqa: E402
from uniopd.labels import METHOD_COLOURS, METHOD_ORDER  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")
# the methods the comparison figures draw, in uniopd.labels' order and colours (a new method is
# one line there); variants of a method ("Omni-DPO w/o w_qual") stay in the tables
ORDER = list(METHOD_ORDER)


def _final(runs: Runs) -> pd.DataFrame:
    e = runs.evals
    return e[e.step == e.groupby("run").step.transform("max")]


def _bins(step: pd.Series) -> pd.Series:
    """Steps pooled into about 12 bins (labelled by their first step)."""
    width = max(1, int(step.max()) // 12)
    return (step - 1) // width * width + 1


def fig_difficulty_histograms(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    paths = [
        Path(p) for p in runs.info.path if (Path(p) / "difficulty" / "histograms.json").exists()
    ]
    if not paths:
        return None
    hist = json.loads((paths[0] / "difficulty" / "histograms.json").read_text())
    fig, axes = plt.subplots(1, len(hist), figsize=(4.2 * len(hist), 3.2), squeeze=False)
    for ax, (domain, h) in zip(axes[0], sorted(hist.items())):
        x = np.array(h["pass_count"])
        ax.bar(x - 0.2, h["before"], width=0.4, label="raw", color="#8da0cb")
        ax.bar(x + 0.2, h["after"], width=0.4, label="balanced", color="#fc8d62")
        ax.set(
            title=f"{domain}", xlabel=f"initial-student pass count (of {x.max()})", ylabel="prompts"
        )
    axes[0][0].legend()
    fig.suptitle("Difficulty of the training prompts, raw vs offline-balanced")
    run = Path(paths[0]).name
    caption = basis_line(runs, runs.info[runs.info.path == str(paths[0])].run)
    return Figure(
        "difficulty_histograms", save_figure(fig, out, "difficulty_histograms", caption), [run]
    )


def fig_online_ratio(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    # "no control" from plain runs of the ratio runs' world and regime only, never a sweep trial
    sel = online_ratio_cells(runs.info)
    ratio = sel[sel.online_ratio.notna()] if len(sel) else sel
    if len(ratio) == 0 or ratio.online_ratio.nunique() < 2:
        return None
    f = _final(runs).merge(sel[["run", "online_ratio"]], on="run")
    f["r"] = f.online_ratio.map(
        lambda r: "no control" if pd.isna(r) else "correct-only" if math.isinf(r) else f"{r:g}"
    )
    order = ["no control"] + [
        f"{r:g}" for r in sorted(x for x in ratio.online_ratio.unique() if not math.isinf(x))
    ]
    order += ["correct-only"] if any(math.isinf(x) for x in ratio.online_ratio) else []
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.pointplot(
        data=f,
        x="r",
        y="acc",
        hue="domain",
        order=[o for o in order if o in set(f.r)],
        errorbar="sd",
        dodge=0.2 if f.domain.nunique() > 1 else False,
        ax=ax,
    )
    ax.set(
        xlabel="online balance ratio r (correct : incorrect)",
        ylabel="held-out accuracy (final)",
        title="Online correctness-aware balancing: accuracy against r",
    )
    used = sorted(f.run.unique())
    return Figure(
        "online_ratio", save_figure(fig, out, "online_ratio", basis_line(runs, used)), used
    )


def fig_filtering(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    info = runs.info
    sel = info[(info.method == "opd") & info.online_ratio.isna() & (info.calibration == "off")]
    sel = sel[sel.sweep.isna()] if "sweep" in sel else sel  # a trial answers another question
    if sel.offline_mode.nunique() < 2:
        return None
    sel = alike(sel, sel[sel.offline_mode != "none"])  # "raw" from the filters' world only
    names = {
        "none": "raw",
        "drop_all_correct": "w/o all-correct",
        "drop_all_wrong": "w/o all-wrong",
        "balance": "balanced",
    }
    f = _final(runs).merge(sel[["run", "offline_mode"]], on="run")
    f["data"] = f.offline_mode.map(names)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.barplot(
        data=f,
        x="data",
        y="acc",
        hue="domain",
        errorbar="sd",
        order=[n for n in names.values() if n in set(f.data)],
        ax=ax,
    )
    ax.set(
        xlabel="", ylabel="held-out accuracy (final)", title="Offline data: filtering vs balancing"
    )
    used = sorted(f.run.unique())
    return Figure("filtering", save_figure(fig, out, "filtering", basis_line(runs, used)), used)


def fig_order_heatmap(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    """Per-token advantages of a correct and an incorrect rollout of one prompt, before and after
    the margin shift (the paper's Figure 6): a pair that was out of order, when one was logged."""
    cand = runs.info[runs.info.calibration == "shift"]
    best = None
    for path in cand.path:
        p = Path(path) / "pairs.jsonl"
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            pair = json.loads(line)
            gc, gw = np.mean(pair["correct"]["before"]), np.mean(pair["incorrect"]["before"])
            score = (gw - gc, -pair["step"])  # most out of order first, early steps on a tie
            if best is None or score > best[0]:
                best = (score, pair, Path(path).name)
    if best is None:
        return None
    _, pair, run = best
    rows = [
        ("correct, before", pair["correct"]["before"]),
        ("correct, after", pair["correct"]["after"]),
        ("incorrect, before", pair["incorrect"]["before"]),
        ("incorrect, after", pair["incorrect"]["after"]),
    ]
    width = max(len(v) for _, v in rows)
    grid = np.full((4, width), np.nan)
    for i, (_, v) in enumerate(rows):
        grid[i, : len(v)] = v
    lim = np.nanpercentile(np.abs(grid), 98) or 1.0
    fig, ax = plt.subplots(figsize=(min(16, 2 + width * 0.28), 2.8))
    sns.heatmap(
        grid,
        cmap="RdBu",
        center=0,
        vmin=-lim,
        vmax=lim,
        ax=ax,
        yticklabels=[f"{name}  (G = {np.mean(v):+.3f})" for name, v in rows],
        xticklabels=False,
        cbar_kws={"label": "per-token advantage"},
    )
    ax.set(
        xlabel="response token",
        title=f"{run}, step {pair['step']}, {pair['domain']} prompt "
        f"{pair['prompt_id']}: returns before / after the margin shift",
    )
    return Figure(
        "order_heatmap",
        save_figure(fig, out, "order_heatmap", basis_line(runs, [run])),
        [run],
        extra={"pair": {k: pair[k] for k in ("step", "prompt_id", "domain")}},
    )


def fig_order_over_training(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    m = runs.metrics
    if "order/consistency_before" not in m:
        return None
    m = _compared(runs, m.merge(runs.info[["run", "group"]], on="run"))
    m = m[m.group.isin(["OPD", "Uni-OPD"])]
    if m.empty:
        return None
    long = m.melt(
        id_vars=["run", "group", "step"],
        value_vars=[c for c in ("order/consistency_before", "order/consistency_after") if c in m],
        var_name="when",
        value_name="consistency",
    ).dropna()
    if long.empty:  # no step had a group with both correct and incorrect rollouts
        return None
    long["when"] = long.when.str.removeprefix("order/consistency_").map(
        {"before": "before calibration", "after": "after calibration"}
    )
    long["step"] = _bins(long.step)  # one step has few mixed groups: pool neighbouring steps
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.lineplot(
        data=long, x="step", y="consistency", hue="group", style="when", errorbar="sd", ax=ax
    )
    ax.set(ylabel="order-consistent pairs", title="Order consistency during training")
    long["curve"] = long.group + ", " + long.when
    note = mark_coinciding(ax, coinciding(long, "step", "consistency", "curve"))
    used = sorted(m.run.unique())
    files = save_figure(fig, out, "order_over_training", basis_line(runs, used))
    return Figure("order_over_training", files, used, note=note)


def _compared(runs: Runs, df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the compared methods' runs (ORDER) that are experiments, not sweep trials: a trial is a
    point of another question (a margin delta, a ratio) and would blur the method's curve."""
    trials = set(runs.info[runs.info.sweep.notna()].run) if "sweep" in runs.info else set()
    return df[df.group.isin(ORDER) & ~df.run.isin(trials)]


def _offline_bars(ax, sub: pd.DataFrame, runs: Runs, hue_order: list[str]) -> bool:
    """The wall-time panel's offline part: for each run that estimated difficulty before step 1,
    a bar from 0 to the estimate's end at its step-0 accuracy, in its method's colour (the curve
    starts where the bar ends). True when any was drawn."""
    offline = runs.info.set_index("run").offline_s
    colours = METHOD_COLOURS
    drawn = False
    for run, rows in sub[sub.step == 0].groupby("run"):
        seconds = offline.get(run, 0.0)
        if seconds and seconds == seconds:
            row = rows.iloc[0]
            ax.hlines(row.acc, 0, seconds, colors=[colours[row.group]], lw=4, alpha=0.35)
            drawn = True
    return drawn


def _convergence_runs(runs: Runs, teachers: dict) -> tuple[pd.DataFrame, str | None, dict]:
    """The eval rows drawn (the teacher setting and world with the most runs, and GRPO of that
    world on the same domains: runs of other dials are never averaged in as seeds), the setting
    as the title says it, and its teachers' accuracies per domain."""
    e = _compared(runs, runs.evals.merge(runs.info[["run", "setting", "teachers"]], on="run"))
    e = with_world(e, runs.info)
    taught = e[e.setting != "no teacher"]
    if not len(taught):
        return e, None, teachers
    setting, world = taught.drop_duplicates("run").groupby(["setting", "world"]).size().idxmax()
    refs = json.loads(taught[taught.setting == setting].teachers.iloc[0])
    domains = set(taught[taught.setting == setting].domain)
    grpo = (e.setting == "no teacher") & e.domain.isin(domains)
    e = e[((e.setting == setting) | grpo) & (e.world == world)]
    teachers = {d: a for d in refs if (a := teacher_accuracy(teachers, refs, d)) is not None}
    return e, f"{setting}; {world}" if world else setting, teachers


def fig_convergence(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    e, main, teachers = _convergence_runs(runs, teachers)
    if e.empty:
        return None
    domains = sorted(e.domain.unique())
    fig, axes = plt.subplots(2, len(domains), figsize=(4.5 * len(domains), 6), squeeze=False)
    notes, offline = [], False
    for j, d in enumerate(domains):
        sub = e[e.domain == d]
        order = [g for g in ORDER if g in set(sub.group)]
        for i, x in enumerate(("step", "wall_s")):
            ax = axes[i][j]
            # by step: mean ± sd over seeds; by wall time: one line per run (their clocks differ)
            kw = {"errorbar": "sd"} if i == 0 else {"units": "run", "estimator": None, "lw": 0.8}
            sns.lineplot(
                data=sub,
                x=x,
                y="acc",
                hue="group",
                hue_order=order,
                palette=METHOD_COLOURS,
                ax=ax,
                legend=i + j == 0,
                **kw,
            )
            if d in teachers:
                ax.axhline(teachers[d], color="k", ls="--", lw=1, label="teacher")
            if i == 0:
                notes.append(mark_coinciding(ax, coinciding(sub, "step", "acc", "group")))
            else:
                offline |= _offline_bars(ax, sub, runs, order)
            ax.set(
                title=f"{d}",
                xlabel="training step"
                if i == 0
                else "seconds, every phase (bar: the offline estimate before step 1)",
                ylabel="held-out accuracy",
            )
    compared = " vs ".join(g for g in ORDER if g in set(e.group))  # the methods these runs hold
    fig.suptitle(f"Convergence: {compared} ({main}; dashed: the domain's teacher)")
    fig.tight_layout()
    used = sorted(e.run.unique())
    files = save_figure(fig, out, "convergence", basis_line(runs, used))
    note = "; ".join(n for n in notes if n)
    return Figure("convergence", files, used, note=note, extra={"offline_estimate": offline})


def fig_dynamics(runs: Runs, out: Path, teachers: dict) -> Figure | None:
    m = _compared(runs, runs.metrics.merge(runs.info[["run", "group", "setting"]], on="run"))
    m = with_world(m, runs.info)
    taught = m[m.setting != "no teacher"].drop_duplicates("run")
    if len(taught):  # the convergence figure's choice: the setting and world with the most runs
        setting, world = taught.groupby(["setting", "world"]).size().idxmax()
        m = m[m.setting.isin([setting, "no teacher"]) & (m.world == world)]
    if m.empty:
        return None
    m = m.assign(bin=_bins(m.step))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    notes = []
    for ax, (col, label) in zip(
        axes,
        [
            ("reward", "correct ratio of rollouts"),
            ("entropy", "token entropy"),
            ("response_length", "response length (tokens)"),
        ],
    ):
        sns.lineplot(
            data=m,
            x="bin",
            y=col,
            hue="group",
            hue_order=[g for g in ORDER if g in set(m.group)],
            palette=METHOD_COLOURS,
            errorbar="sd",
            ax=ax,
            legend=ax is axes[0],
        )
        ax.set(xlabel="training step", ylabel=label)
        if col in m:
            found = mark_coinciding(ax, coinciding(m, "bin", col, "group"))
            notes.append(f"{col}: {found}" if found else "")
    fig.suptitle("Training dynamics")
    fig.tight_layout()
    used = sorted(m.run.unique())
    files = save_figure(fig, out, "dynamics", basis_line(runs, used))
    return Figure("dynamics", files, used, note="; ".join(n for n in notes if n))


FIGURES = [
    fig_difficulty_histograms,
    fig_online_ratio,
    fig_filtering,
    fig_order_heatmap,
    fig_order_over_training,
    fig_convergence,
    fig_dynamics,
    fig_dial_effects,
    fig_gain_vs_order,
    fig_claims_v2_effects,
    fig_study_v2_grad_share,
    fig_study_v2_horizon,
]
