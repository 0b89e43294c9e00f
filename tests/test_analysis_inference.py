"""Study v2's statistics (uniopd/analysis/inference.py) against answers known from elsewhere:
Student's sleep data (R's `t.test(extra ~ group, paired = TRUE)`), a Holm adjustment worked by
hand, G*Power's sample sizes, and a simulation of the power formula with numpy at a fixed seed."""

import builtins
import math

import numpy as np
import pandas as pd
import pytest

from uniopd.analysis import inference as inf

# Cushny and Peebles' extra hours of sleep, drug 2 minus drug 1, patient by patient (Student 1908;
# R's datasets::sleep). R: t = 4.0621, df = 9, p = 0.002833, 95 % CI 0.7001142 .. 2.4598858.
SLEEP_D = [1.2, 2.4, 1.3, 1.3, 0.0, 1.0, 1.8, 0.8, 4.6, 1.4]


def test_paired_t_matches_student_sleep_data():
    t = inf.claim_test(SLEEP_D, bound=2.0)
    assert (t.n, round(t.mean, 2), round(t.sd, 4)) == (10, 1.58, 1.2300)
    assert t.p_better == pytest.approx(0.002833 / 2, rel=1e-3)  # one-sided: half of R's two-sided
    assert t.p_worse == pytest.approx(1 - 0.002833 / 2, rel=1e-3)
    assert (t.ci_low, t.ci_high) == pytest.approx((0.7001142, 2.4598858), abs=1e-6)


def test_tost_is_the_larger_of_its_two_one_sided_tests():
    # bound 2: the upper test reads t = (1.58 - 2) / (1.23 / sqrt 10) = -1.0798 on 9 df
    t = inf.claim_test(SLEEP_D, bound=2.0)
    assert t.p_equivalent == pytest.approx(0.15416, abs=1e-4)
    wide = inf.claim_test(SLEEP_D, bound=5.0)  # 1.58 with sd 1.23 is well inside ±5
    assert wide.p_equivalent < 0.001


def test_paired_differences_pair_by_seed_and_drop_the_unpaired():
    a = pd.Series({0: 0.50, 1: 0.60, 2: 0.70, 3: 0.80})
    b = pd.Series({1: 0.55, 0: 0.40, 2: np.nan, 4: 0.10})
    d = inf.paired_differences(a, b)
    assert d.to_dict() == pytest.approx({0: 0.10, 1: 0.05})


def test_holm_matches_the_hand_worked_step_down():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert inf.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = inf.holm([0.01, float("nan"), 0.04])  # a claim without two seeds is not in the family
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04)


def test_seeds_needed_matches_gpower():
    # G*Power, paired t (matched pairs), dz = 0.5, alpha 0.05, power 0.8: one tail 27 pairs
    assert inf.seeds_needed(sd=2.0, effect=1.0, alpha=0.05) == 27
    assert inf.seeds_needed(sd=2.0, effect=1.0, alpha=0.05 / 5) > 27  # Holm's first step costs


def test_power_formula_agrees_with_a_simulation():
    """Draw the paired differences `seeds` at a time; the share of one-sided t-tests at alpha that
    reject must be the power the formula gives (4000 simulated studies: ± 0.02)."""
    from scipy import stats

    sd, effect, alpha = 1.5, 1.0, 0.01
    seeds = inf.seeds_needed(sd, effect, alpha)
    d = np.random.default_rng(0).normal(effect, sd, size=(4000, seeds))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(seeds))
    rejected = float((t > stats.t.ppf(1 - alpha, seeds - 1)).mean())
    assert rejected == pytest.approx(inf.power_at(sd, effect, seeds, alpha), abs=0.02)
    assert rejected >= 0.78  # the seeds asked for give the power asked for


def test_verdicts_read_holm_corrected_tests():
    spread = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -0.2, 0.2, 0.0])  # mean 0, sd 0.9
    tests = {
        "better": inf.claim_test(3.0 + spread, bound=1.0),
        "worse": inf.claim_test(-3.0 + spread, bound=1.0),
        "null": inf.claim_test(0.2 * spread, bound=1.0),
        "noisy": inf.claim_test(5.0 * spread, bound=1.0),
        "one seed": inf.claim_test([2.0], bound=1.0),
    }
    assert inf.verdicts(tests) == {
        "better": inf.HOLDS,
        "worse": inf.FAILS,
        "null": inf.EQUIVALENT,
        "noisy": inf.OPEN,
        "one seed": inf.OPEN,
    }
    assert inf.tost_power_floor(sd=0.3, bound=1.0, seeds=12, alpha=0.01) > 0.99


def test_bad_bound_and_missing_statsmodels_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="equivalence bound"):
        inf.claim_test([1.0, 2.0], bound=0)
    real = builtins.__import__

    def no_statsmodels(name, *args, **kw):
        if name.startswith("statsmodels"):
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_statsmodels)
    with pytest.raises(inf.StatisticsUnavailable, match=r"pip install 'uniopd\[analysis\]'"):
        inf.claim_test([1.0, 2.0, 3.0], bound=1.0)
