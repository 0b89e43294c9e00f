"""grade_by_domain: each domain's rows to its verifier, repeated rows graded once."""

import pytest

from uniopd.tasks.problem import Problem
from uniopd.verifiers import grade_by_domain
from uniopd.verifiers.code import CodeVerifier
from uniopd.verifiers.math import MathVerifier
from uniopd.verifiers.sandbox import Limits

ADD = Problem(
    id="op",
    domain="code",
    prompt="add",
    entry_point="op",
    tests=[{"args": [1, 2], "expected": 3}, {"args": [5, 5], "expected": 10}],
)
# the same id in another data set: a different problem all the same
MUL = Problem(
    id="op",
    domain="code",
    prompt="mul",
    entry_point="op",
    tests=[{"args": [1, 2], "expected": 2}, {"args": [5, 5], "expected": 25}],
)
HALF = Problem(id="h", domain="math", prompt="1/2?", answer="0.5")

SUM = "```python\ndef op(a, b):\n    return a + b\n```"
# right about half the time on its own: each case passes with probability 0.5 ** (1 / 2)
COIN = "```python\nimport random\ndef op(a, b):\n    return a + b if random.random() < 0.7071 else -1\n```"


class Asked:
    """A real verifier that keeps how many rows each call asked it to grade."""

    def __init__(self, verifier):
        self.verifier, self.asked = verifier, []

    def grade(self, problems, completions):
        self.asked.append(len(problems))
        return self.verifier.grade(problems, completions)


@pytest.fixture(scope="module")
def code():
    v = CodeVerifier(Limits(wall_s=5.0))
    yield v
    v.close()


def test_repeated_rows_are_graded_once_and_share_the_verdict(code):
    asked_code, asked_math = Asked(code), Asked(MathVerifier())
    problems = [ADD] * 3 + [MUL] * 3 + [HALF] * 4
    completions = [SUM] * 3 + [SUM] * 3 + ["\\boxed{0.5}", "\\boxed{1/2}", "\\boxed{0.5}", "7"]
    scores = grade_by_domain({"code": asked_code, "math": asked_math}, problems, completions)
    # ADD and MUL share an id and a completion but are different problems: graded apart
    assert scores == [1.0] * 3 + [0.0] * 3 + [1.0, 1.0, 1.0, 0.0]
    assert asked_code.asked == [2] and asked_math.asked == [3]


def test_a_random_program_copied_forty_times_gets_one_verdict_unless_the_verifier_asks_for_each(
    code,
):
    rows = [ADD] * 40
    shared = grade_by_domain({"code": code}, rows, [COIN] * 40)
    assert len(set(shared)) == 1

    class EachCopy(Asked):
        grades_each_copy = True

    each = EachCopy(code)
    drawn = grade_by_domain({"code": each}, rows, [COIN] * 40)
    assert each.asked == [40]
    # each copy drawn on its own: all 40 alike has probability 2 * 0.5 ** 40
    assert set(drawn) == {0.0, 1.0}


def test_a_verifier_returning_the_wrong_number_of_scores_is_named():
    class Short:
        def grade(self, problems, completions):
            return [1.0]

    with pytest.raises(ValueError, match="Short.*'math'.*1 scores for 2"):
        grade_by_domain({"math": Short()}, [HALF, HALF], ["1", "2"])
