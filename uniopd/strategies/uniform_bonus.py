"""The margin shift's control: the same outcome bonus on every mixed group, with no `gap < δ`
condition (uniopd/algorithms/uniform_bonus.py; study v2, docs/study.md).

    calibration:
      strategy: uniform_bonus        # delta, mode, direction, scope as for margin_shift
      options: {bonus: null}         # null: matched to the margin shift's mean shift each step
"""

from __future__ import annotations

from pydantic import Field

from uniopd.algorithms.uniform_bonus import uniform_bonus
from uniopd.objectives.base import NoOptions
from uniopd.strategies import CALIBRATORS
from uniopd.strategies.base import Calibration, Calibrator


class UniformBonusOptions(NoOptions):
    bonus: float | None = Field(
        default=None,
        ge=0,
        description="The bonus every mixed group gets (split as `direction` says); null: the mean "
        "shift the margin shift would give this step's mixed groups (its total, spread evenly).",
    )


@CALIBRATORS.register("uniform_bonus")
class UniformBonus(Calibrator):
    """Move every mixed group's correct rollouts up and incorrect ones down by one bonus."""

    Options = UniformBonusOptions

    def calibrate(self, advantages_N_T, mask_N_T, correct_N, group_ids_N):
        c = self.section
        out, st, would = uniform_bonus(
            advantages_N_T,
            mask_N_T,
            correct_N,
            group_ids_N,
            c.delta,
            c.mode,
            c.direction,
            c.scope,
            self.options.bonus,
        )
        return Calibration(
            out,
            None,
            {  # the margin shift's quantities, and how many units it would have moved
                "calibration/mixed_units": st.mixed,
                "calibration/calibrated_frac": st.calibrated / st.mixed if st.mixed else None,
                "calibration/mean_shift": st.mean_shift,
                "calibration/shift_would_frac": would if st.mixed else None,
            },
        )
