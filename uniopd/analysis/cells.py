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
