"""Greedy margin mask (METHOD 4.2): drop the rollouts that break the order, within limits."""

from __future__ import annotations

from uniopd.algorithms import margin_mask
from uniopd.strategies import CALIBRATORS
from uniopd.strategies.base import Calibration, Calibrator


@CALIBRATORS.register("margin_mask")
class MarginMask(Calibrator):
    """Zero the advantages of the rollouts whose returns break the margin, greedily."""

    def calibrate(self, advantages_N_T, mask_N_T, correct_N, group_ids_N):
        c = self.section
        out, dropped, st = margin_mask(
            advantages_N_T,
            mask_N_T,
            correct_N,
            group_ids_N,
            c.delta,
            c.mode,
            c.scope,
            c.min_retain_ratio,
        )
        return Calibration(
            out,
            dropped,
            {
                "calibration/mixed_units": st.mixed,
                "calibration/calibrated_frac": st.calibrated / st.mixed if st.mixed else None,
                "calibration/dropped_rollouts": int(dropped.sum()),
            },
        )
