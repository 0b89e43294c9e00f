"""What a figure function returns and how it is written: every figure as PNG and PDF, with a caption
saying what it rests on, and a record of its files, the runs it drew on and a note (curves that
coincide, say), which the manifest lists. A figure whose variable does not vary is not drawn: its
function returns Skipped, which the manifest names with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class Figure:
    name: str
    files: list[str]
    runs: list[str]
    note: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Skipped:
    """A figure not drawn because what it compares does not vary in these runs (one teacher flaw,
    one deficit): a panel of one value would read as an effect."""

    why: str


def save_figure(fig, out: Path, name: str, caption: str = "") -> list[str]:
    """<out>/<name>.png and .pdf; `caption` (what the figure rests on: seeds, steps, held-out
    samples) is written under the axes, so a copied picture keeps it."""
    out.mkdir(parents=True, exist_ok=True)
    if caption:
        fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=7, color="#444", wrap=True)
    files = []
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        files.append(str(path))
    plt.close(fig)
    return files
