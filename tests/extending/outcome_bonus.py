"""A new calibration strategy: a fixed outcome bonus on the distillation advantage."""

import torch
from pydantic import Field

from uniopd.objectives import NoOptions
from uniopd.strategies import CALIBRATORS, Calibration, Calibrator


class OutcomeBonusOptions(NoOptions):
    bonus: float = Field(default=0.1, ge=0, description="Added to correct, taken from incorrect.")


@CALIBRATORS.register("outcome_bonus")
class OutcomeBonus(Calibrator):
    """Move every correct rollout up and every incorrect one down by a fixed bonus."""

    Options = OutcomeBonusOptions  # calibration.options in an experiment file

    def calibrate(self, advantages_N_T, mask_N_T, correct_N, group_ids_N):
        # correct_N: 1 correct, 0 incorrect, NaN ungraded (left as it is)
        sign = torch.nan_to_num(2 * correct_N - 1, nan=0.0)
        shifted = advantages_N_T + self.options.bonus * sign[:, None] * mask_N_T
        return Calibration(shifted, None, {"calibration/bonus": self.options.bonus})
