"""The pre-registered study's figures (the dial study, docs/journal.md 2026-11-29) from its runs: what each world
dial did to the quantity it targets, and Uni-OPD's gain against the teacher's measured order
consistency. figures.py lists them in FIGURES.

    uniopd group experiments/study/order experiments/study/skew ... --seeds 0 1 2
    uniopd figures runs --teacher math=... --teacher code=... --out paper_figures

Accuracies are final held-out accuracies averaged over domains.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from uniopd.analysis.basis import basis_line  # noqa: E402
from uniopd.analysis.curves import coinciding, mark_coinciding  # noqa: E402
from uniopd.analysis.figure_file import Figure, Skipped, save_figure  # noqa: E402
from uniopd.analysis.runs import Runs  # noqa: E402
from uniopd.analysis.study_data import early_order, final_accuracy, study_cells  # noqa: E402


def _world_taught(runs: Runs) -> pd.Series:
    """Per run: is a domain it is evaluated on taught by a world expert? teacher_flaw acts only on
    builtin: models, so a run taught by other checkpoints says nothing about the dial."""
    domains = runs.evals.groupby("run").domain.agg(set)
    return pd.Series(
        [
            any(
                str(json.loads(refs).get(d, "")).startswith("builtin:")
                for d in domains.get(run, ())
            )
            for run, refs in zip(runs.info.run, runs.info.teachers)
        ],
        index=runs.info.index,
        dtype=bool,
    )


def _by_flaw(df: pd.DataFrame, cols: list[str]) -> dict:
    """{teacher_flaw: {col: {mean, std, n}}}: the numbers behind a per-flaw mean ± std."""
    return {
        f"{f:g}": {
            c: {"mean": g[c].mean(), "std": g[c].std(ddof=1), "n": int(g[c].count())} for c in cols
        }
        for f, g in df.groupby("teacher_flaw")
    }


def _dial_order(runs: Runs) -> pd.DataFrame:
    """(a) Per run taught by world teachers, the other dials at their defaults (a skewed list or
    another student changes the order too): its teacher_flaw and measured order consistency."""
    info = runs.info
    if len(info):
        alone = (info.deficit == "habit") & info.difficulty_skew.isna()
        info = info[_world_taught(runs) & alone]
    df = pd.DataFrame(
        {
            "run": info.run.values,
            "teacher_flaw": info.teacher_flaw.astype(float).values,
            "pairwise": early_order(runs).reindex(info.run).values,
            "group": early_order(runs, "order/group_consistency_before").reindex(info.run).values,
        }
    )
    return df.dropna(subset=["pairwise", "group"], how="all")


def _draw_order(ax, order: pd.DataFrame) -> dict:
    for i, (col, mark, dx) in enumerate((("pairwise", "o", -0.01), ("group", "s", 0.01))):
        ax.scatter(order.teacher_flaw + dx, order[col], marker=mark, color=f"C{i}", alpha=0.4)
        mean = order.groupby("teacher_flaw")[col].mean()
        ax.plot(mean.index, mean.values, marker=mark, color=f"C{i}", label=f"{col} (mean)")
    long = order.melt(id_vars="teacher_flaw", value_vars=["pairwise", "group"], var_name="kind")
    mark_coinciding(ax, coinciding(long, "teacher_flaw", "value", "kind"))
    ax.set(
        xlabel="world.teacher_flaw",
        ylabel="order consistency before calibration",
        title="teacher flaw vs measured order",
    )
    ax.legend()
    return {"runs": order.to_dict("records"), "by_flaw": _by_flaw(order, ["pairwise", "group"])}


def _dial_skew(runs: Runs) -> dict:
    """(b) Per skew: the training list's pass-count histogram (fractions, summed over domains),
    read from one run; the natural histogram of all prompts as the reference."""
    info = runs.info[runs.info.difficulty_skew.notna()] if len(runs.info) else runs.info
    out = {}
    for skew, rows in info.groupby("difficulty_skew"):
        found = [p for p in rows.path if (Path(p) / "difficulty" / "histograms.json").exists()]
        if found:
            hist = json.loads((Path(found[0]) / "difficulty" / "histograms.json").read_text())
            before = np.sum([h["before"] for h in hist.values()], axis=0)
            natural = np.sum([h["natural"] for h in hist.values()], axis=0)
            out[f"{float(skew):g}"] = {
                "run": Path(found[0]).name,
                "before": (before / before.sum()).tolist(),
                "natural": (natural / natural.sum()).tolist(),
            }
    return out


def _draw_skew(ax, skew: dict) -> dict:
    x = np.arange(len(next(iter(skew.values()))["natural"]))
    ax.plot(x, next(iter(skew.values()))["natural"], "k--", label="natural (all prompts)")
    for s, h in skew.items():
        ax.plot(x, h["before"], marker="o", label=f"skew {s}")
    ax.set_xticks(x)
    ax.set(
        xlabel="initial-student pass count",
        ylabel="fraction of the training list",
        title="difficulty skew vs the list's difficulty",
    )
    ax.legend()
    return skew


def _dial_deficit(runs: Runs) -> pd.DataFrame:
    """(c) GRPO on the world's student: accuracy per domain at step 0 and at its last step."""
    info = runs.info
    if info.empty:
        return pd.DataFrame()
    grpo = info[(info.method == "grpo") & info.student.astype(str).str.startswith("builtin:")]
    e = runs.evals.merge(grpo[["run", "deficit"]], on="run")
    e = e[(e.step == 0) | (e.step == e.groupby("run").step.transform("max"))]
    return e.assign(when=np.where(e.step == 0, "start", "end"))[
        ["run", "deficit", "domain", "when", "acc"]
    ]


def _draw_deficit(ax, e: pd.DataFrame) -> list[dict]:
    table = e.groupby(["deficit", "domain", "when"]).acc.agg(
        mean="mean", std=lambda a: a.std(ddof=1), seeds="size"
    )
    keys = [(d, w) for d in sorted(e.domain.unique()) for w in ("start", "end")]
    kinds = sorted(e.deficit.unique())
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        k = table.loc[kind]
        ax.bar(
            np.arange(len(keys)) + (i - (len(kinds) - 1) / 2) * width,
            [k["mean"].get(key, np.nan) for key in keys],
            width,
            yerr=[k["std"].get(key, np.nan) for key in keys],
            capsize=3,
            label=kind,
        )
    ax.set_xticks(np.arange(len(keys)), [f"{d}\n{w}" for d, w in keys], fontsize=7)
    ax.set(ylabel="GRPO held-out accuracy", title="deficit vs what GRPO can fix")
    ax.legend(title="deficit")
    return table.reset_index().to_dict("records")


def _constant_dials(panels: dict) -> dict[str, str]:
    """The panels whose dial takes one value in these runs, each with why it is not drawn: one
    teacher flaw (or one deficit) is no comparison, and a lone bar reads as an effect. The skew
    panel compares each skew with the natural list, so one skew is a comparison."""
    why = {}
    for name, dial in (("order", "teacher_flaw"), ("deficit", "deficit")):
        if name not in panels:
            continue
        values = sorted({str(v) for v in panels[name][0][dial]})
        if len(values) == 1:
            why[name] = f"world.{dial} takes one value ({values[0]}) in these runs"
    return why


def fig_dial_effects(runs: Runs, out: Path, teachers: dict) -> Figure | Skipped | None:
    panels = {
        "order": (_dial_order(runs), _draw_order),
        "skew": (_dial_skew(runs), _draw_skew),
        "deficit": (_dial_deficit(runs), _draw_deficit),
    }
    panels = {name: p for name, p in panels.items() if len(p[0])}  # a dial no run turned: no panel
    if not panels:
        return None
    constant = _constant_dials(panels)
    panels = {name: p for name, p in panels.items() if name not in constant}
    if not panels:
        return Skipped("no dial varies: " + "; ".join(constant.values()))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.6), squeeze=False)
    numbers = {}
    for i, (ax, (name, (data, draw))) in enumerate(zip(axes[0], panels.items())):
        numbers[name] = draw(ax, data)
        ax.set_title(f"({'abc'[i]}) {ax.get_title()}")  # lettered as drawn: no gap for a skip
    used = set()
    for name, (data, _) in panels.items():
        used |= {h["run"] for h in data.values()} if name == "skew" else set(data.run)
    fig.suptitle("What each world dial did to the quantity it targets")
    fig.tight_layout()
    _write_json(out / "dial_effects.json", numbers)
    return Figure(
        "dial_effects",
        save_figure(fig, out, "dial_effects", basis_line(runs, used)),
        sorted(used),
        note="; ".join(f"{name} panel not drawn: {why}" for name, why in constant.items()),
        extra={"numbers": "dial_effects.json"},
    )


def gain_points(runs: Runs) -> pd.DataFrame:
    """Per teacher_flaw and seed: Uni-OPD − OPD final accuracy, and the OPD run's measured order
    consistency (mean of its first 10 steps)."""
    final, oc, info = final_accuracy(runs), early_order(runs), runs.info
    opd, uni = study_cells(info, "study-order-opd"), study_cells(info, "study-order-uniopd")
    pairs = opd.merge(uni, on=["teacher_flaw", "seed"], suffixes=("_opd", "_uni"))
    acc = final.set_index("run").acc
    return pd.DataFrame(
        {
            "teacher_flaw": pairs.teacher_flaw.astype(float).values,
            "seed": pairs.seed.values,
            "opd_run": pairs.run_opd.values,
            "uniopd_run": pairs.run_uni.values,
            "order_consistency": oc.reindex(pairs.run_opd).values,
            "gain": acc.reindex(pairs.run_uni).values - acc.reindex(pairs.run_opd).values,
        }
    )


def fig_gain_vs_order(runs: Runs, out: Path, teachers: dict) -> Figure | Skipped | None:
    points = gain_points(runs).dropna(subset=["gain"]) if len(runs.info) else pd.DataFrame()
    if points.empty:
        return None
    if points.teacher_flaw.nunique() < 2:  # the gain against order needs orders to differ
        flaw = f"{points.teacher_flaw.iloc[0]:g}"
        return Skipped(f"world.teacher_flaw takes one value ({flaw}) in the order cells")
    by = _by_flaw(points, ["order_consistency", "gain"])
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.scatter(points.order_consistency, points.gain, alpha=0.4, label="one seed")
    oc, gain = (
        pd.DataFrame({f: {s: v[c][s] for s in ("mean", "std")} for f, v in by.items()}).T
        for c in ("order_consistency", "gain")
    )
    ax.errorbar(
        oc["mean"],
        gain["mean"],
        xerr=oc["std"],
        yerr=gain["std"],
        fmt="o",
        capsize=3,
        color="k",
        label="mean ± std over seeds",
    )
    for f in by:
        ax.annotate(
            f"flaw {f}",
            (oc["mean"][f], gain["mean"][f]),
            textcoords="offset points",
            xytext=(6, 6),
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="OPD's order consistency before calibration (first 10 steps)",
        ylabel="Uni-OPD − OPD final accuracy",
        title="Uni-OPD's gain against the teacher's order consistency",
    )
    ax.legend()
    _write_json(out / "gain_vs_order.json", {"points": points.to_dict("records"), "by_flaw": by})
    used = set(points.opd_run) | set(points.uniopd_run)
    return Figure(
        "gain_vs_order",
        save_figure(fig, out, "gain_vs_order", basis_line(runs, used)),
        sorted(used),
        extra={"numbers": "gain_vs_order.json"},
    )


def _plain(x):
    """JSON-ready: numpy scalars as Python ones, NaN (a std over one seed, a run without mixed
    groups) as null, so the file is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    x = x.item() if isinstance(x, np.generic) else x
    return None if isinstance(x, float) and not np.isfinite(x) else x


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(doc), indent=1) + "\n")
