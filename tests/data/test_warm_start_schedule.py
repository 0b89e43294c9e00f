"""The warm starts' learning-rate schedule (world/sft.py): warm up, hold, then decay to zero."""

from uniopd.builder.sft import warmup_stable_decay


def test_warm_up_hold_then_decay_to_zero():
    steps = 800
    f = [warmup_stable_decay(s, steps) for s in range(steps)]
    assert f[0] == 1 / 40 and f[39] == 1.0  # 5 % warm-up
    assert all(x == 1.0 for x in f[40:640])  # flat until 80 % of the steps
    assert all(a > b for a, b in zip(f[640:], f[641:]))  # strictly decreasing after
    assert f[-1] == 1 / 160 and warmup_stable_decay(steps, steps) == 0.0


def test_short_runs_still_warm_up_and_end_at_zero():
    assert warmup_stable_decay(0, 3) == 1.0  # one warm-up step at least
    assert warmup_stable_decay(3, 3) == 0.0
