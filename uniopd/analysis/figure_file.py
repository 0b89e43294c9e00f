"""What a figure function returns and how it is written: every figure as PNG and PDF, and a record
of its files, the runs it drew on and a note, which the manifest lists."""

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


def save_figure(fig, out: Path, name: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        files.append(str(path))
    plt.close(fig)
    return files
