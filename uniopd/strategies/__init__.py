"""Uni-OPD strategies by name, open to plugins: online balancers (student side, every step) and
calibrators (teacher side, on the distillation advantage).

    balance:
      online: {enabled: true, strategy: correctness, ratio: 1.0}     # METHOD 3.2
    calibration:
      strategy: margin_shift          # or margin_mask, or a plugin's name; options: {...}

A new strategy is one file with a subclass of `OnlineBalancer` or `Calibrator` registered with
`@ONLINE_BALANCERS.register(name)` / `@CALIBRATORS.register(name)`, or an entry point in the
group `uniopd.balancers` / `uniopd.calibrators` (docs/extending.md).
"""

from uniopd.registry import Registry
from uniopd.strategies.base import Calibration, Calibrator, OnlineBalancer

ONLINE_BALANCERS: Registry[type[OnlineBalancer]] = Registry(
    "online balancer", "uniopd.balancers", builtins="uniopd.strategies.correctness"
)
CALIBRATORS: Registry[type[Calibrator]] = Registry(
    "calibrator",
    "uniopd.calibrators",
    builtins=(
        "uniopd.strategies.margin_shift",
        "uniopd.strategies.margin_mask",
        "uniopd.strategies.uniform_bonus",  # the margin shift's control (docs/study.md)
    ),
)

__all__ = ["CALIBRATORS", "ONLINE_BALANCERS", "Calibration", "Calibrator", "OnlineBalancer"]
