"""World v6's soft-skill student: the share of its warm-start lines that write a lacking phrase
right is set per domain (world/recipe.SOFT_SKILL_RATES). Code's is larger than math's because at
one share its right-token probability was 0.024 (math) but 0.007 (code) (docs/world.md)."""

import copy

import pytest

from uniopd.builder.pipeline import _warm_start_data
from uniopd.tasks.builtin import builtin_problems
from uniopd.tasks.chains import step_phrases
from uniopd.world.recipe import HELD_OUT, SOFT_SKILL_RATES, Dials, make_recipe

SOFT = make_recipe(6, Dials(deficit="soft_skill"))


def _one_lacking_step(problem) -> bool:
    return sum(any(w in s for w in HELD_OUT[problem.domain]) for s in step_phrases(problem)) == 1


@pytest.mark.slow  # makes the soft-skill student's whole warm-start set twice (about 2 s)
def test_the_warm_start_writes_each_domains_lacking_line_right_at_its_own_rate():
    spec, data = SOFT["models"]["student"], SOFT["data"]
    shown = _warm_start_data(spec, SOFT["seed"], data)
    reference = {p.id: p.solution for d in HELD_OUT for p in builtin_problems(d, "sft", data)}
    for domain, rate in SOFT_SKILL_RATES.items():
        # problems with a single lacking step: right exactly when that line is right
        single = [p for p in shown if p.domain == domain and _one_lacking_step(p)]
        share = sum(p.solution == reference[p.id] for p in single) / len(single)
        sd = (rate * (1 - rate) / len(single)) ** 0.5
        assert len(single) > 1000 and abs(share - rate) < 4 * sd, (domain, share, rate)
    assert SOFT_SKILL_RATES["code"] > SOFT_SKILL_RATES["math"]
    # math's draws are the ones of the student built at one share (0.03) for both domains
    one_share = copy.deepcopy(spec)
    one_share["misread"]["right_rate"] = 0.03
    before = _warm_start_data(one_share, SOFT["seed"], data)
    assert [p for p in shown if p.domain == "math"] == [p for p in before if p.domain == "math"]
