"""What a dashboard comparing OPD, Uni-OPD, GRPO and the preference methods (DPO, Omni-DPO, C-DPO)
shows, once, as data: sections of charts, each naming the run-directory metrics it draws (the tags the mirrors and `uniopd board` write, see
scalars.py) and its x axis. The saved wandb workspace (wandb_workspace.py) and the board's
custom-scalars page (command.py) are both laid out from this list, so they show the same curves."""

from __future__ import annotations

import re
from dataclasses import dataclass

# the phases the trainer times per step (metrics.jsonl `time/<phase>`); balance and calibrate only
# appear in runs that use them
PHASES = ("rollout", "verify", "teacher", "balance", "calibrate", "update")
# what uniopd.loop.preference logs per pair objective: pairs/<name>/<what> (and loss/<name>)
PAIR_METRICS = (
    ("count", "preference pairs per step"),
    ("reward_accuracy", "pairs whose implicit reward prefers the chosen response"),
    ("margin", "mean implicit reward margin"),
)


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
        preference_section(),
        Section(
            "Time per phase",
            (
                Chart("seconds per step", ("time/step",)),
                *(Chart(f"{p}: seconds per step", (f"time/{p}",)) for p in PHASES),
            ),
        ),
    ]


def pair_objectives() -> list[str]:
    """The registered objectives of kind pair (dpo, omni_dpo, cdpo, a plugin's)."""
    from uniopd.objectives import OBJECTIVES

    return [n for n in OBJECTIVES.names() if OBJECTIVES.get(n).kind == "pair"]


def preference_section() -> Section:
    """One chart per pair quantity, a curve per pair objective: runs of different preference
    methods share the chart, each run drawing the metric of its own objective."""
    names = pair_objectives()
    return Section(
        "Preference pairs (DPO, Omni-DPO, C-DPO)",
        (
            Chart("preference loss", tuple(f"loss/{n}" for n in names)),
            *(
                Chart(title, tuple(f"pairs/{n}/{what}" for n in names))
                for what, title in PAIR_METRICS
            ),
        ),
    )


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
