"""On-policy self-distillation (OPSD, METHOD 7): the teacher is the student itself, shown the
reference solution; the student sees the question only.

The advantage is OPD's log-ratio; what makes it OPSD is the teacher, named in the experiment file
like any other (`teachers: {math: self+privileged}`, or `self@ema+privileged`). This objective
insists on it, so a file that says opsd cannot silently distil from an ordinary teacher.
"""

from __future__ import annotations

from uniopd.objectives import OBJECTIVES
from uniopd.objectives.base import Need, Signals
from uniopd.objectives.opd import OPD
from uniopd.refs import parse_teacher


@OBJECTIVES.register("opsd")
class OPSD(OPD):
    """OPD from the student's own frozen (or EMA) weights with the reference solution in context."""

    label = "OPSD"

    def needs(self):
        return frozenset({Need.TEACHER_LOGP, Need.PRIVILEGED})

    def advantages(self, s: Signals):
        return super().advantages(s)

    def problems(self, cfg):
        wrong = [
            f"teachers.{d} = {ref}"
            for d, ref in sorted(cfg.teachers.items())
            if not (parse_teacher(ref).is_self and parse_teacher(ref).privileged)
        ]
        if wrong:
            return [
                f"distils from the student's own weights with the reference solution in its "
                f"prompt, but {', '.join(wrong)}: name self+privileged (or self@ema+privileged)"
            ]
        return []
