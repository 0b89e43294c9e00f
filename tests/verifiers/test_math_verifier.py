"""MathVerifier: last-box extraction, math-verify equivalence, None only when the grader breaks."""

import subprocess
import sys
import threading
import time

import pytest

from uniopd.registry import RegistryError
from uniopd.tasks.problem import Problem
from uniopd.verifiers import VERIFIERS, get_verifier
from uniopd.verifiers.math import MathVerifier, last_boxed


def _grade(completion: str, answer: str, **kwargs) -> float | None:
    problem = Problem(id="p", domain="math", prompt="?", answer=answer)
    return get_verifier("math", **kwargs).grade([problem], [completion])[0]


@pytest.mark.parametrize(
    "completion, answer, score",
    [
        (r"So the probability is \boxed{3/4}.", "0.75", 1.0),
        (r"So the probability is \boxed{\frac{3}{4}}.", "0.75", 1.0),
        (r"\boxed{0.75}", r"\frac{3}{4}", 1.0),
        (r"\boxed{\dfrac{3}{4}}", "3/4", 1.0),
        (r"We get \boxed{12} apples.", "12", 1.0),
        (r"\boxed{5}", "6", 0.0),
        ("The answer is 5", "5", 0.0),  # no box, even though the number is right
        ("The answer is $5$", "5", 0.0),
        (r"First \boxed{6}, no wait: the answer is \boxed{5}.", "5", 1.0),  # graded on the last box
        (r"First \boxed{5}, no wait: the answer is \boxed{6}.", "5", 0.0),
        (r"\boxed{5}, \boxed{6}", "5", 0.0),  # hedging earns nothing
        (r"\boxed{} so the answer: $5$", "5", 0.0),  # an empty box does not fall back to other text
        (r"\boxed{\frac{1}{2", "1/2", 0.0),  # truncated response, the box never closes
        (r"\fbox{7}", "7", 1.0),
        ("", "7", 0.0),
    ],
)
def test_scores(completion, answer, score):
    assert _grade(completion, answer) == score


def test_last_boxed_balances_braces():
    assert last_boxed(r"a \boxed{1} b \boxed{\frac{1}{2}} c") == r"\boxed{\frac{1}{2}}"
    assert last_boxed(r"\boxed {x^{2}}") == r"\boxed{x^{2}}"
    assert last_boxed("no box here") is None


def test_unparseable_reference_is_not_graded():
    assert _grade(r"\boxed{5}", "") is None


def test_grader_timeout_is_none_not_zero():
    # 10^(10^10) has ten billion digits: sympy cannot finish, math-verify's own timeout fires.
    start = time.monotonic()
    assert _grade(r"\boxed{10^{10^{10}}}", "5", timeout_s=1) is None
    assert time.monotonic() - start < 10


def test_grading_off_the_main_thread_still_works():
    problems = [Problem(id="p", domain="math", prompt="?", answer="0.75")] * 2
    out = {}

    def grade_in_thread():
        out["scores"] = MathVerifier().grade(problems, [r"\boxed{3/4}", r"\boxed{1}"])

    thread = threading.Thread(target=grade_in_thread)
    thread.start()
    thread.join(timeout=60)
    assert out["scores"] == [1.0, 0.0]


def test_64_answers_well_under_a_second():
    verifier = get_verifier("math")
    problems = [
        Problem(id=f"p{i}", domain="math", prompt="?", answer=str(i % 8)) for i in range(64)
    ]
    completions = [
        rf"Working... so we get \boxed{{\frac{{{2 * i}}}{{2}}}} in the end." for i in range(64)
    ]
    verifier.grade(problems[:1], completions[:1])  # first call pays for sympy's lazy imports
    start = time.monotonic()
    scores = verifier.grade(problems, completions)
    assert time.monotonic() - start < 1.0
    assert scores == [1.0 if i < 8 else 0.0 for i in range(64)]


def test_unknown_verifier_names_the_known_ones():
    known = "code, describe, math, visual"
    with pytest.raises(RegistryError, match=f"unknown verifier 'chess'; known: {known}"):
        get_verifier("chess")
    assert issubclass(RegistryError, ValueError)
    assert VERIFIERS.names() == ["code", "describe", "math", "visual"]
    assert [e.origin for e in VERIFIERS.entries()] == ["uniopd"] * 4


def test_the_sandbox_side_never_imports_math_verify():
    # The code sandbox's server and runners import uniopd.verifiers (and unpickle jobs defined in
    # uniopd.verifiers.code); the registry must not load its built-ins there.
    code = (
        "import sys, uniopd.verifiers.sandbox, uniopd.verifiers.code\n"
        "from uniopd.verifiers import VERIFIERS\n"
        "assert 'math_verify' not in sys.modules and 'sympy' not in sys.modules\n"
        "assert not VERIFIERS._loaded and list(VERIFIERS._entries) == ['code']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_length_mismatch_is_a_caller_bug():
    with pytest.raises(ValueError):
        get_verifier("math").grade([Problem(id="p", domain="math", prompt="?", answer="1")], [])
