"""Which runs a comparison may put side by side: its baseline from the same world and regime as
the runs it is compared with, and from plain experiments only. The online-ratio study's selection
lives here because two readers share it: the `online_ratio` figure and analysis/balance_ratio.py.
"""

from __future__ import annotations

import pandas as pd

# what makes two runs comparable besides the compared toggle: the world's dials, regime, budget
SETTING = ["world_version", "teacher_flaw", "deficit", "difficulty_skew", "latent_difficulty"]
SETTING += ["horizon", "epochs", "steps"]


def alike(sel: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """The rows of `sel` whose world and regime are those of some row of `ref`: a baseline from
    another world (a flawed teacher, a deficit) must not be averaged into the comparison."""
    cols = [c for c in SETTING if c in sel.columns]
    if not cols:
        return sel

    def key(df: pd.DataFrame) -> pd.Series:  # None and NaN read alike: both "no dial"
        return df[cols].apply(
            lambda row: "|".join("-" if pd.isna(v) else str(v) for v in row), axis=1
        )

    return sel[key(sel).isin(set(key(ref)))]


def _said(column: str, value) -> str:
    """One dial as a table says it: "flaw 0.6", "no deficit", "30 steps"."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return {
            "deficit": "no deficit",
            "difficulty_skew": "no skew",
            "horizon": "levels 1-4",  # world.horizon unset: the problems of earlier worlds
        }.get(column, f"no {column}")
    if column == "latent_difficulty":
        return "latent difficulty" if value else "no latent difficulty"
    number = f"{value:g}" if isinstance(value, float) else str(value)
    return {
        "world_version": f"world v{number}",
        "teacher_flaw": f"flaw {number}",
        "deficit": f"deficit {number}",
        "difficulty_skew": f"skew {number}",
        "horizon": f"horizon {number}",
        "epochs": f"{number} epochs",
        "steps": f"{number} steps",
    }[column]


def world_labels(info: pd.DataFrame) -> pd.Series:
    """Per run (indexed like `info`), the dials of SETTING in which the runs differ, e.g. "flaw
    0.6, 30 steps"; empty when they all share one world and regime. A table keys its rows by it
    so that runs of different dials are never averaged as if they were seeds."""
    if info.empty:
        return pd.Series("", index=info.index, dtype=str)
    cols = [c for c in SETTING if c in info.columns]
    varying = [
        c for c in cols if info[c].map(lambda v: "-" if pd.isna(v) else str(v)).nunique() > 1
    ]
    return info.apply(lambda row: ", ".join(_said(c, row[c]) for c in varying), axis=1).astype(str)


def with_world(rows: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """`rows` (with a `run` column) and a `world` column: world_labels over the runs they hold."""
    shown = info[info.run.isin(set(rows.run))]
    return rows.assign(world=rows.run.map(dict(zip(shown.run, world_labels(shown)))))


def online_ratio_cells(info: pd.DataFrame, sweeps: bool = True) -> pd.DataFrame:
    """The runs of the online-ratio comparison: plain OPD (no offline balancing, no calibration),
    with online balancing at some ratio, or without it as the baseline ("no control"). The
    baseline is never a sweep's trial (a trial is one point of another question) and comes from
    the ratio runs' own world and regime; GRPO, Uni-OPD and other recipes are in neither.
    `sweeps=False` leaves sweep trials out of the ratio points too."""
    if info.empty:
        return info
    plain = info[
        (info.method == "opd") & (info.offline_mode == "none") & (info.calibration == "off")
    ]
    trial = plain.sweep.notna() if "sweep" in plain else pd.Series(False, index=plain.index)
    ratio = plain[plain.online_ratio.notna() & (sweeps | ~trial)]
    baseline = plain[plain.online_ratio.isna() & ~trial]
    return pd.concat([ratio, alike(baseline, ratio)])
