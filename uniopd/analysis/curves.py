"""Curves that coincide: two methods whose mean curves are identical draw one line over the other,
and the reader sees one method where there are two. Such curves are found here and named on the
axes (and in the figure's note in the manifest)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def coinciding(df: pd.DataFrame, x: str, y: str, hue: str) -> list[list[str]]:
    """Groups of `hue` values whose mean curves of `y` against `x` are identical (same x values,
    same y values): each group of two or more is drawn as one line."""
    curves = {str(h): g.groupby(x)[y].mean() for h, g in df.groupby(hue, sort=True)}
    groups: list[list[str]] = []
    for name, curve in curves.items():
        for group in groups:
            ref = curves[group[0]]
            if ref.index.equals(curve.index) and np.allclose(
                ref.to_numpy(float), curve.to_numpy(float), rtol=0, atol=1e-9, equal_nan=True
            ):
                group.append(name)
                break
        else:
            groups.append([name])
    return [g for g in groups if len(g) > 1]


def mark_coinciding(ax, groups: list[list[str]]) -> str:
    """Writes on the axes which curves coincide; returns the note ("" when none do)."""
    if not groups:
        return ""
    note = "; ".join(" = ".join(g) for g in groups) + " (identical: one line hides the other)"
    ax.text(
        0.98, 0.02, note, transform=ax.transAxes, fontsize=7, color="#a00", ha="right", va="bottom"
    )
    return note
