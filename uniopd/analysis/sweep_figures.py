"""The sweep figures: per sweep folder (summary.json, trials.csv), the parameter importances and
the objective against each parameter over the complete trials.

    uniopd figures runs/study --sweeps runs/sweeps --out figures
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from uniopd.analysis.basis import basis_line  # noqa: E402
from uniopd.analysis.figure_file import Figure, save_figure  # noqa: E402
from uniopd.analysis.runs import Runs  # noqa: E402


def fig_sweeps(sweep_dirs: list[Path], out: Path, runs: Runs | None = None) -> list[Figure]:
    """One figure per sweep folder (summary.json and trials.csv), captioned with what its trials
    rest on when their run directories are among `runs`."""
    figs = []
    for d in sweep_dirs:
        summary, trials = d / "summary.json", d / "trials.csv"
        if not (summary.exists() and trials.exists()):
            continue
        s = json.loads(summary.read_text())
        t = pd.read_csv(trials)
        t = t[t.state == "COMPLETE"]
        params = [c for c in t.columns if c.startswith("params_")]
        if t.empty or not params:
            continue
        fig, axes = plt.subplots(
            1, len(params) + 1, figsize=(4 * (len(params) + 1), 3.2), squeeze=False
        )
        imp = s.get("importances") or {}
        axes[0][0].barh(list(imp), list(imp.values()), color="#66c2a5")
        axes[0][0].set(title="parameter importance", xlabel="fANOVA importance")
        for ax, p in zip(axes[0][1:], params):
            sns.stripplot(data=t, x=p, y="value", ax=ax, native_scale=t[p].dtype != object)
            ax.set(xlabel=p.removeprefix("params_"), ylabel=s["objective"]["metric"])
        fig.suptitle(f"sweep {s['study']}: {len(t)} complete trials")
        fig.tight_layout()
        trials = (
            runs.info[runs.info.sweep == s["study"]].run
            if runs is not None and "sweep" in runs.info
            else []
        )
        caption = basis_line(runs, trials) if len(trials) else ""
        name = f"sweep_{s['study']}"
        figs.append(Figure(name, save_figure(fig, out, name, caption), [str(d)]))
    return figs
