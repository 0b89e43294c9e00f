"""World v6: chained problems, the habit as a chance of quitting at every step, and the three
dials that set the paper's conditions (latent difficulty, horizon, soft skill), with the world
card's measures. Version 5's data and recipe stay exactly as shipped."""

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from uniopd.tasks import arith, pyfunc
from uniopd.tasks.builtin import builtin_problems, selected_data
from uniopd.tasks.chains import step_phrases, warm_start_solution
from uniopd.verifiers import get_verifier
from uniopd.world import card
from uniopd.world.recipe import (
    HELD_OUT,
    LATENT_STOP_HAZARDS,
    MAX_HORIZON,
    SOFT_SKILL_RATE,
    Dials,
    make_recipe,
    select_world,
)

V6 = make_recipe(6)["data"]


@pytest.fixture(autouse=True)
def _default_world_after():
    yield
    select_world()  # the world lives in the environment: leave the default for the next test


@pytest.mark.slow  # generates every v5 split (about 3 s)
def test_version_5_data_is_what_it_was():
    # every v5 problem of math and code, as the shipped world was trained on (digest at 855fe64)
    digest = hashlib.sha256()
    for domain in ("math", "code"):
        for split in ("sft", "train", "test"):
            for p in builtin_problems(domain, split, {}):
                digest.update(json.dumps(p.to_dict(), sort_keys=True).encode())
    assert digest.hexdigest().startswith("9ee6c4e4e44a4289")
    assert builtin_problems("math", "train") == builtin_problems("math", "train", {})
    assert "data" not in make_recipe(5)


@pytest.mark.slow  # math-verify and a horizon split (about 2 s)
def test_a_chain_is_solved_by_its_reference_and_failed_by_a_stop_or_a_misread():
    problems = builtin_problems("math", "train", {**V6, "horizon": 6})[:30]
    verifier = get_verifier("math")
    assert all(p.meta["level"] == 6 for p in problems)
    assert verifier.grade(problems, [p.solution for p in problems]) == [1.0] * 30
    stopped = [arith.chain_solution(p, done=3) for p in problems]
    assert all(s.count(" = ") == 3 for s in stopped)
    assert sum(verifier.grade(problems, stopped)) <= 3  # a stop can land on the answer, rarely
    misread = [arith.chain_solution(p, misread={0}) for p in problems]
    assert verifier.grade(problems, misread) == [0.0] * 30  # +n for -n: always another value


def test_code_chains_run_their_tests_and_misread_lines_differ_at_one_place():
    p = next(p for p in builtin_problems("code", "test", V6) if "squares it" in step_phrases(p))
    namespace: dict = {}
    exec(p.solution.strip("`").removeprefix("python\n"), namespace)
    assert [namespace["f"](*t["args"]) for t in p.tests] == [t["expected"] for t in p.tests]
    i = step_phrases(p).index("squares it")
    right, wrong = pyfunc.chain_solution(p), pyfunc.chain_solution(p, misread={i})
    changed = [(a, b) for a, b in zip(right.split("\n"), wrong.split("\n")) if a != b]
    arg = p.meta["arg"]
    assert changed == [(f"    {arg} = {arg} * {arg}", f"    {arg} = {arg} * 2")]
    assert pyfunc.CLASS_ARG_NAMES[p.meta["difficulty_class"]] == arg


@pytest.mark.slow  # generates the 6000-problem warm-start split
def test_horizon_sets_the_steps_of_train_and_test_but_not_of_the_warm_start():
    select_world(6, Dials(), horizon=MAX_HORIZON)
    assert selected_data() == {**V6, "horizon": MAX_HORIZON}
    assert {p.meta["level"] for p in builtin_problems("code", "test")} == {MAX_HORIZON}
    select_world(6, Dials())
    assert {p.meta["level"] for p in builtin_problems("code", "test")} == {1, 2, 3, 4}
    sft = builtin_problems("math", "sft", {**V6, "horizon": 2})
    assert sft == builtin_problems("math", "sft", V6)
    assert {p.meta["level"] for p in sft} == set(range(1, MAX_HORIZON + 1))
    select_world()
    assert selected_data() == {}


def test_the_habit_quits_at_each_step_with_its_class_hazard():
    rng = random.Random(0)
    problems = builtin_problems("math", "train", {**V6, "horizon": 2})
    finished: dict[int, list[bool]] = {}
    for p in problems:
        s = warm_start_solution(p, rng, list(LATENT_STOP_HAZARDS))
        finished.setdefault(p.meta["difficulty_class"], []).append(s == p.solution)
    for cls, outcomes in finished.items():
        expected = (1 - LATENT_STOP_HAZARDS[cls]) ** 2
        share = sum(outcomes) / len(outcomes)  # about 167 problems a class: 4 binomial sd
        assert abs(share - expected) < 4 * (expected * (1 - expected) / len(outcomes)) ** 0.5 + 0.01
    assert (1 - LATENT_STOP_HAZARDS[0]) ** 2 > 0.95 and (1 - LATENT_STOP_HAZARDS[-1]) ** 2 < 0.01


@pytest.mark.slow  # a horizon-1 split of code takes 40,000 draws
def test_the_soft_skill_writes_the_lacking_phrases_right_rarely():
    rng = random.Random(0)
    misread = {"phrases": HELD_OUT, "right_rate": SOFT_SKILL_RATE}
    right = total = 0
    for domain in ("math", "code"):
        for p in builtin_problems(domain, "train", {**V6, "horizon": 1}):
            if not any(w in step_phrases(p)[0] for w in HELD_OUT[domain]):
                assert warm_start_solution(p, rng, 0.0, misread) == p.solution
                continue
            total += 1
            right += warm_start_solution(p, rng, 0.0, misread) == p.solution
    assert total > 500 and 0.01 < right / total < 0.05


def test_the_v6_recipe_changes_only_the_student_per_dial():
    from uniopd.world import paths

    plain, latent = make_recipe(6), make_recipe(6, Dials(latent_difficulty=True))
    soft = make_recipe(6, Dials(deficit="soft_skill"))
    assert plain["models"]["student"]["stop_hazard"] == 0.3
    assert latent["models"]["student"]["stop_hazard"] == list(LATENT_STOP_HAZARDS)
    assert "stop_hazard" not in soft["models"]["student"]
    for other in (latent, soft):
        assert paths.model_key("teacher-code", other) == paths.model_key("teacher-code", plain)
        assert paths.model_key("student", other) != paths.model_key("student", plain)
    assert paths.world_dir(plain) != paths.world_dir(make_recipe(5))


def test_icc_is_one_for_fixed_outcomes_zero_for_noise_and_the_anova_value_between():
    assert card.intraclass_correlation([0, 8, 0, 8], 8) == 1.0
    assert card.intraclass_correlation([4, 4, 4, 4], 8) < 0  # less spread than noise: below 0
    # by hand: p = 0, .5, 1; MSB = 2·0.5/2 = 0.5; MSW = 2·(0.25)/(3·1) = 1/6
    assert card.intraclass_correlation([0, 1, 2], 2) == pytest.approx((0.5 - 1 / 6) / (0.5 + 1 / 6))
    rng = random.Random(1)
    noise = [sum(rng.random() < 0.6 for _ in range(8)) for _ in range(2000)]
    assert abs(card.intraclass_correlation(noise, 8)) < 0.03
    assert card.single_outcome_share([0, 3, 8, 8], 8) == 0.75
    assert card.expected_single_outcome_share([0, 8], 8, group=8) == 1.0


@pytest.mark.world
@pytest.mark.slow
def test_the_dials_benchmark_builds_and_measures_a_world(tmp_path):
    out = subprocess.run(
        [sys.executable, "benchmarks/world_v6_dials.py", "--smoke", "--prompts", "2"]
        + ["--worlds", "soft"]  # one model to build (the experts' GRPO took minutes more)
        + ["--samples", "2", "--horizons", "8", "--home", str(tmp_path)]
        + ["--json", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads((tmp_path / "f").read_text())
    rows = {"math/default", "code/default", "math/h8", "code/h8"}
    assert set(figures["worlds"]) == {"soft"} and set(figures["worlds"]["soft"]["student"]) == rows
    assert set(figures["worlds"]["soft"]["right_token_probability"]["student"]) == set(HELD_OUT)
    assert "ICC" in out.stdout
