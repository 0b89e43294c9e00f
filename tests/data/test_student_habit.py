"""The tiny student's habit (it stops one step early), graded by the real verifiers, and the
warm-start set that teaches it."""

from collections import Counter

import pytest

from uniopd.builder.pipeline import _warm_start_data
from uniopd.tasks import arith, pyfunc
from uniopd.tasks.builtin import builtin_problems
from uniopd.verifiers import get_verifier

MODULES = {"math": arith, "code": pyfunc}


# code grades every program in the sandbox (about 2.5 s): the slow tier
@pytest.mark.parametrize("domain", ["math", pytest.param("code", marks=pytest.mark.slow)])
def test_the_reference_passes_and_the_early_stop_fails(domain):
    problems = builtin_problems(domain, "sft")[:40]
    verifier = get_verifier(domain)
    assert verifier.grade(problems, [p.solution for p in problems]) == [1.0] * len(problems)
    flawed = [MODULES[domain].early_stop_solution(p) for p in problems]
    grades = verifier.grade(problems, flawed)
    # stopping early can coincide with the full chain (code: abs after a square), rarely
    assert sum(g == 0.0 for g in grades) >= 0.85 * len(problems), grades


def test_math_early_stop_keeps_the_work_and_boxes_the_value_before_the_last_step():
    p = next(p for p in builtin_problems("math", "sft") if p.meta["level"] == 3)
    steps = p.solution.split(". ")[:-1]
    flawed = arith.early_stop_solution(p)
    assert flawed.startswith(". ".join(steps[:2]) + ".")
    assert steps[2] not in flawed
    assert flawed.endswith(f"\\boxed{{{steps[1].split(' = ')[1].rstrip('.')}}}.")
    one = next(p for p in builtin_problems("math", "sft") if p.meta["level"] == 1)
    start = one.prompt.split(" has ")[1].split(" ")[0]
    assert arith.early_stop_solution(one) == f"The answer is \\boxed{{{start}}}."


def test_code_early_stop_drops_only_the_last_line():
    p = next(p for p in builtin_problems("code", "sft") if p.meta["level"] == 2)
    full, flawed = p.solution.split("\n"), pyfunc.early_stop_solution(p).split("\n")
    assert flawed == full[:3] + full[4:]


def test_warm_start_share_of_the_habit_is_the_recipe_rate():
    spec = {"domains": ["math", "code"], "early_stop_rate": 0.4}
    data = _warm_start_data(spec, seed=0)
    reference = {
        (p.domain, p.prompt): p.solution
        for d in ("math", "code")
        for p in builtin_problems(d, "sft")
    }
    flawed = Counter(p.domain for p in data if p.solution != reference[(p.domain, p.prompt)])
    per_domain = len(data) // 2
    for domain in ("math", "code"):
        assert 0.37 < flawed[domain] / per_domain < 0.43
    assert _warm_start_data(spec, seed=0) == data  # deterministic for a seed
    assert _warm_start_data({"domains": ["math"]}, seed=0) == list(builtin_problems("math", "sft"))
