"""The study's runs read as the quantities both its figures (study_figures.py) and its claims table
(claims.py) use: each run's final held-out accuracy (mean over domains), its measured order
consistency (the mean of its first 10 steps, before training moves it), and the runs of one
study cell family.
"""

from __future__ import annotations

import pandas as pd

from uniopd.analysis.runs import Runs

# a run's "measured" order consistency: the mean of its first 10 steps, before training moves it
EARLY_STEPS = 10


def final_accuracy(runs: Runs) -> pd.DataFrame:
    """Per run: held-out accuracy at its last eval, mean over domains (run, experiment, seed, acc)."""
    e = runs.evals
    last = e[e.step == e.groupby("run").step.transform("max")]
    return last.groupby(["run", "experiment", "seed"], as_index=False).acc.mean()


def final_evals(runs: Runs) -> pd.DataFrame:
    """Per run and domain: its last evaluation's row (acc, pass@k, ...)."""
    return runs.evals.sort_values("step").groupby(["run", "domain"]).tail(1)


def early_order(runs: Runs, col: str = "order/consistency_before") -> pd.Series:
    """Per run: mean of `col` over its first 10 steps (a step without a mixed group logs none)."""
    m = runs.metrics
    if m.empty or col not in m:
        return pd.Series(dtype=float)
    m = m.sort_values("step")
    first = m[m.groupby("run").cumcount() < EARLY_STEPS]
    return pd.to_numeric(first[col], errors="coerce").groupby(first.run).mean()


def study_cells(info: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The runs of the study cells whose experiment name starts with `prefix`."""
    return info[info.experiment.str.startswith(prefix)] if len(info) else info
