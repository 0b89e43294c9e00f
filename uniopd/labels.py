"""The labels a run is known by in every comparison: its method group (OPD, Uni-OPD, GRPO, ...,
or the objectives and the components switched on) and a tag for every Uni-OPD toggle. Analysis,
the board and the trackers all read runs through these, so they live below all three."""

from __future__ import annotations

# The methods a comparison shows, in the order tables and figures list them (distillation, the
# recipe, RL, then preference learning), each with its one colour in every figure (a colour-blind
# safe palette: Okabe-Ito). A group not listed (a plugin's objective, OPD with some of the
# recipe's components) comes after the listed one it starts with, or last.
METHODS: tuple[tuple[str, str], ...] = (
    ("OPD", "#0072B2"),
    ("Uni-OPD", "#D55E00"),
    ("GRPO", "#009E73"),
    ("DPO", "#CC79A7"),
    ("Omni-DPO", "#E69F00"),
    ("C-DPO", "#56B4E9"),
)
METHOD_ORDER = tuple(name for name, _ in METHODS)
METHOD_COLOURS = dict(METHODS)
PREFERENCE_METHODS = ("DPO", "Omni-DPO", "C-DPO")


def method_rank(group: str) -> tuple[int, str]:
    """A sort key for method groups: METHOD_ORDER first, a variant ("Omni-DPO w/o w_qual",
    "DPO (pair file)") right after the method it varies, anything else last, by name."""
    for i, name in enumerate(METHOD_ORDER):
        if group == name or group.startswith(name + " "):
            return (i, group)
    return (len(METHOD_ORDER), group)


def method_group(cfg) -> str:
    """OPD / Uni-OPD / GRPO / OPD+GRPO / JSD / DPO / Omni-DPO / C-DPO / ..., or the objectives +
    the components switched on; a preference method's switched-off parts and a pair file are part
    of its group (an ablation is not the method)."""
    base = "+".join(objective.label or name for name, _, objective in cfg.method.objectives())
    base += "".join(_preference_variant(o) for _, _, o in cfg.method.objectives())
    if getattr(cfg.data, "pairs", None) is not None:
        base += " (pair file)"
    if not cfg.method.distills() and not cfg.method.needs_teacher():
        return base
    parts = []
    if cfg.balance.offline.mode != "none":
        parts.append(f"offline-{cfg.balance.offline.mode}")
    online = cfg.balance.online
    if online.enabled:  # a plugin balancer by its name: its ratio may mean something else
        parts.append(
            f"online-r{online.ratio:g}"
            if online.strategy == "correctness"
            else f"online-{online.strategy.replace('_', '-')}"
        )
    # by the calibrator's name, not the shorthand booleans: `strategy: margin_shift` is the same
    # calibration as `margin_shift: true`, and a control such as uniform_bonus is not plain OPD
    if cfg.calibration.strategy != "none":
        parts.append(cfg.calibration.strategy.replace("_", "-"))
    if parts == ["offline-balance", "online-r1", "margin-shift"]:
        return "Uni-OPD" if base == "OPD" else f"Uni-{base}"
    return " + ".join([base, *parts])


def toggle_tags(cfg) -> list[str]:
    cal = cfg.calibration
    if cal.margin_shift:
        calibration = f"calibration:shift-{cal.mode}-{cal.direction}-d{cal.delta:g}-{cal.scope}"
    elif cal.margin_mask:
        calibration = f"calibration:mask-{cal.mode}-d{cal.delta:g}-{cal.scope}"
    else:
        calibration = "calibration:off"
    online = cfg.balance.online
    return [
        f"method:{cfg.method.name}",
        f"offline:{cfg.balance.offline.mode}",
        f"online:r{online.ratio:g}-{online.scope}" if online.enabled else "online:off",
        calibration,
        f"seed:{cfg.seed}",
    ]


def _preference_variant(objective) -> str:
    """' w/o w_qual', ' w/o w_perf', ' w/o c-NLL' for each of Omni-DPO's parts switched off."""
    options = objective.options
    off = [
        part
        for switch, part in (
            ("quality_weight", "w_qual"),
            ("dynamics_weight", "w_perf"),
            ("c_nll", "c-NLL"),
        )
        if getattr(options, switch, True) is False
    ]
    return "".join(f" w/o {part}" for part in off)
