"""Training objectives by name (`method.name` in an experiment file), open to plugins.

    method:
      name: opd+grpo                 # a '+'-joined sum of registered objectives
      coefs: {grpo: 0.5}             # weights (default 1)
      options: {jsd: {beta: 0.5}}    # each objective's own options, checked by its Options model

A new objective is one file with an `Objective` subclass and `@OBJECTIVES.register(name)`, or
an entry point in the group `uniopd.objectives` (docs/extending.md).
"""

from uniopd.objectives.base import TEACHER_NEEDS, Need, NoOptions, Objective, Signals
from uniopd.registry import Registry

OBJECTIVES: Registry[type[Objective]] = Registry(
    "objective",
    "uniopd.objectives",
    builtins=(
        "uniopd.objectives.opd",
        "uniopd.objectives.grpo",
        "uniopd.objectives.divergence",
        "uniopd.objectives.topk",
        "uniopd.objectives.opsd",
        "uniopd.objectives.exopd",
        "uniopd.objectives.dpo",
        "uniopd.objectives.omni_dpo",
        "uniopd.objectives.cdpo",
    ),
)

__all__ = ["OBJECTIVES", "TEACHER_NEEDS", "Need", "NoOptions", "Objective", "Signals"]
