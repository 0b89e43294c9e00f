"""The labels a run is known by in every comparison: its method group (OPD, Uni-OPD, GRPO, ...,
or the objectives and the components switched on) and a tag for every Uni-OPD toggle. Analysis,
the board and the trackers all read runs through these, so they live below all three."""

from __future__ import annotations


def method_group(cfg) -> str:
    """OPD / Uni-OPD / GRPO / OPD+GRPO / JSD / ..., or the objectives + the components switched on."""
    base = "+".join(objective.label or name for name, _, objective in cfg.method.objectives())
    if not cfg.method.distills() and not cfg.method.needs_teacher():
        return base
    parts = []
    if cfg.balance.offline.mode != "none":
        parts.append(f"offline-{cfg.balance.offline.mode}")
    if cfg.balance.online.enabled:
        parts.append(f"online-r{cfg.balance.online.ratio:g}")
    if cfg.calibration.margin_shift:
        parts.append("margin-shift")
    if cfg.calibration.margin_mask:
        parts.append("margin-mask")
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
