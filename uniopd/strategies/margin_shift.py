"""Outcome-guided margin shift (METHOD 4.1, the released recipe)."""

from __future__ import annotations

from uniopd.algorithms import margin_shift
from uniopd.strategies import CALIBRATORS
from uniopd.strategies.base import Calibration, Calibrator


@CALIBRATORS.register("margin_shift")
class MarginShift(Calibrator):
    """Move correct / incorrect rollouts' advantages so their return gap is at least delta."""

    def calibrate(self, advantages_N_T, mask_N_T, correct_N, group_ids_N):
        c = self.section
        out, st = margin_shift(
            advantages_N_T, mask_N_T, correct_N, group_ids_N, c.delta, c.mode, c.direction, c.scope
        )
        return Calibration(
            out,
            None,
            {
                "calibration/mixed_units": st.mixed,
                "calibration/calibrated_frac": st.calibrated / st.mixed if st.mixed else None,
                "calibration/mean_shift": st.mean_shift,
            },
        )
