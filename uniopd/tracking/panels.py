"""What a dashboard comparing OPD, Uni-OPD and GRPO shows, once, as data: sections of charts, each
naming the run-directory metrics it draws (the tags the mirrors and `uniopd board` write, see
scalars.py) and its x axis. The saved wandb workspace (wandb_workspace.py) and the board's
custom-scalars page (command.py) are both laid out from this list, so they show the same curves."""

from __future__ import annotations

import re
from dataclasses import dataclass

# the phases the trainer times per step (metrics.jsonl `time/<phase>`); balance and calibrate only
# appear in runs that use them
PHASES = ("rollout", "verify", "teacher", "balance", "calibrate", "update")


@dataclass(frozen=True)
class Chart:
    title: str
    metrics: tuple[str, ...]
    x: str = "step"  # "step" (the training step) or "wall" (seconds since the run started)


@dataclass(frozen=True)
class Section:
    name: str
    charts: tuple[Chart, ...]


def comparison_sections(domains: list[str]) -> list[Section]:
    """The comparison, per domain where the paper reports per domain."""
    return [
        Section(
            "Held-out accuracy per domain",
            tuple(Chart(f"{d}: held-out accuracy", (f"eval/{d}/acc",)) for d in domains),
        ),
        Section(
            "Held-out accuracy against wall time",
            tuple(
                Chart(f"{d}: held-out accuracy (wall time)", (f"eval/{d}/acc",), "wall")
                for d in domains
            ),
        ),
        Section(
            "Reward and the teacher's signal",
            (
                Chart("reward (mean verifier outcome of the rollouts)", ("reward",)),
                *(Chart(f"{d}: training accuracy", (f"accuracy/{d}",)) for d in domains),
                Chart("reverse KL to the teachers", ("reverse_kl",)),
                Chart("response length", ("response_length",)),
            ),
        ),
        Section(
            "Teacher order: outcome-guided margin calibration",
            (
                Chart(
                    "order consistency before / after calibration",
                    ("order/consistency_before", "order/consistency_after"),
                ),
                Chart(
                    "group order consistency before / after",
                    ("order/group_consistency_before", "order/group_consistency_after"),
                ),
                Chart(
                    "mean correct-incorrect gap before / after",
                    ("order/mean_gap_before", "order/mean_gap_after"),
                ),
                Chart("calibrated fraction", ("calibration/calibrated_frac",)),
            ),
        ),
        Section(
            "Correctness-aware balancing",
            (
                Chart("rollouts kept by balancing", ("balance/kept",)),
                Chart("rollouts masked by balancing", ("balance/masked",)),
            ),
        ),
        Section(
            "Time per phase",
            (
                Chart("seconds per step", ("time/step",)),
                *(Chart(f"{p}: seconds per step", (f"time/{p}",)) for p in PHASES),
            ),
        ),
    ]


def tensorboard_layout(domains: list[str]) -> dict:
    """TensorBoard's Custom Scalars layout ({section: {chart: ["Multiline", [tag regex, ...]]}}).
    The wall-time section is left out: TensorBoard switches the x axis for the whole page."""
    return {
        section.name: {
            chart.title: ["Multiline", [f"^{re.escape(m)}$" for m in chart.metrics]]
            for chart in section.charts
        }
        for section in comparison_sections(domains)
        if not any(chart.x == "wall" for chart in section.charts)
    }
