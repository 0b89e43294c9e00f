"""Contradictory Uni-OPD toggles are refused at load, naming the fields that conflict and why."""

import pytest

from uniopd.config import load_experiment
from uniopd.config.load import ConfigError

BASE = "experiments/quickstart.yaml"


@pytest.mark.parametrize(
    "overrides, fields, reason",
    [
        (
            ["calibration.margin_shift=true", "calibration.margin_mask=true"],
            ["calibration.margin_shift", "margin_mask"],
            "cannot both be on",
        ),
        (["balance.online.ratio=-0.5"], ["balance.online.ratio"], "greater than or equal to 0"),
        (["balance.online.ratio=nan"], ["balance.online.ratio"], ""),
        (["calibration.delta=-0.1"], ["calibration.delta"], "greater than or equal to 0"),
        (["calibration.mode=median"], ["calibration.mode"], "'mean' or 'minmax'"),
        (["calibration.direction=up"], ["calibration.direction"], "correct_up"),
        (["balance.offline.mode=drop_some"], ["balance.offline.mode"], "drop_all_correct"),
        (["balance.offline.ratio=0"], ["balance.offline.ratio"], "greater than 0"),
        (
            ["balance.offline.mid_low=0.6", "balance.offline.mid_high=0.5"],
            ["balance.offline.mid_low", "mid_high"],
            "no prompt could be mid-difficulty",
        ),
        (
            ["method.name=grpo", "calibration.margin_shift=true"],
            ["calibration.margin_shift", "method"],
            "but method 'grpo' has none",
        ),
        (
            ["balance.online.enabled=true", "rollout.group_size=1"],
            ["balance.online.enabled", "group_size"],
            "group_size >= 2",
        ),
    ],
)
def test_conflicting_or_bad_toggles_are_rejected(overrides, fields, reason):
    with pytest.raises(ConfigError) as err:
        load_experiment(BASE, overrides)
    message = str(err.value)
    for field in fields:
        assert field in message
    assert reason in message


def test_extreme_online_ratios_load():
    assert load_experiment(BASE, ["balance.online.ratio=inf"]).balance.online.ratio == float("inf")
    assert load_experiment(BASE, ["balance.online.ratio=0"]).balance.online.ratio == 0.0
