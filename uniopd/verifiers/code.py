"""Code verifier: run a response's program on the problem's test inputs in the sandbox, and judge
what came back here, outside it.

Scores: 1.0 every case passes, 0.0 anything else (no code, syntax error, wrong answer, crash,
timeout, sys.exit, tampering with the report), None when the sandbox itself failed or could not
start, or the problem has no usable tests ("could not grade": counted, logged, never a reward).

The program is the last ```python fenced block of the response, or the whole response when it has
none. Test formats (see `Problem`):
  - a list of {"args": [...], "expected": value}: `entry_point(*args)` runs in the sandbox, and its
    return value comes back as a plain value and is compared here (`values.same_value`: type-strict,
    with a float tolerance);
  - {"inputs": [str, ...], "outputs": [str, ...]} (LiveCodeBench / APPS stdin/stdout): the program
    runs as a script (`__name__ == "__main__"`) once per case with the input on stdin, and its
    stdout comes back and is compared here as LiveCodeBench's `grade_stdio` does;
  - Python source (HumanEval style): turned into the first form where its asserts allow
    (uniopd/verifiers/check_cases.py; 155 of HumanEval's 164). Otherwise it runs after the program
    in the same process and `check(entry_point)` is called: "source" mode, where the verdict, and
    the expected values, are inside the sandbox. Less trustworthy, so it is logged and counted.

The expected values never enter the sandbox in the first two forms. All the cases of one response
run as one sandbox job, under its limits (wall time, memory, ...).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from uniopd.tasks.problem import Problem
from uniopd.verifiers import VERIFIERS
from uniopd.verifiers.check_cases import Case, cases_from_source
from uniopd.verifiers.sandbox import Job, Limits, Sandbox, SandboxResult
from uniopd.verifiers.values import encode, same_value

logger = logging.getLogger(__name__)

_FENCED_PYTHON = re.compile(
    r"```(?:python3|python|py)[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE
)


def extract_code(completion: str) -> str:
    blocks = _FENCED_PYTHON.findall(completion)
    return blocks[-1] if blocks else completion


@VERIFIERS.register("code")
class CodeVerifier:
    """The last fenced Python block of a response, run against `problem.tests` in the sandbox."""

    name = "code"

    def __init__(
        self, limits: Limits = Limits(), max_parallel: int = 4, isolation: str | None = None
    ):
        self.sandbox = Sandbox(limits, max_parallel, isolation)
        # "could_not_grade", "source_mode": what the caller may log beside the scores
        self.counts: Counter = Counter()

    def grade(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[float | None]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        scores: list[float | None] = [None] * len(problems)
        jobs, plans, slots = [], [], []
        for i, (problem, completion) in enumerate(zip(problems, completions)):
            plan = grading_plan(problem)
            if plan is None:
                logger.warning("problem %s has no usable tests; not graded", problem.id)
                self.counts["could_not_grade"] += 1
                continue
            if plan.mode == "source":
                self.counts["source_mode"] += 1
                if self.counts["source_mode"] == 1:
                    logger.warning(
                        "code verifier: problem %s's test source could not be turned into "
                        "input/output cases; it runs beside the program and its verdict comes "
                        "from inside the sandbox (less trustworthy; counted as source_mode)",
                        problem.id,
                    )
            jobs.append(Job(plan.mode, extract_code(completion), problem.entry_point, plan.inputs))
            plans.append(plan)
            slots.append(i)
        for i, plan, result in zip(slots, plans, self.sandbox.run(jobs)):
            scores[i] = judge(plan, result)
            if scores[i] is None:
                self.counts["could_not_grade"] += 1
        return scores

    def describe(self) -> str:
        return f"code: sandbox with {self.sandbox.isolation()}"

    def close(self) -> None:
        self.sandbox.close()


@dataclass(frozen=True)
class GradingPlan:
    """What runs in the sandbox (`mode`, `inputs`) and what stays outside (`cases`, `outputs`)."""

    mode: str  # "call" | "stdio" | "source"
    inputs: list
    cases: tuple = ()  # call: one Case per input
    outputs: tuple = ()  # stdio: the expected stdout per input


def grading_plan(problem: Problem) -> GradingPlan | None:
    """How to grade the problem's tests; None when they cannot be run (a value that is not plain
    data cannot be shipped in or compared: the grader's problem, never the program's)."""
    try:
        return _plan(problem)
    except (TypeError, ValueError, KeyError):
        return None


def _plan(problem: Problem) -> GradingPlan | None:
    tests = problem.tests
    if isinstance(tests, str):
        return _plan_from_source(tests, problem.entry_point)
    if isinstance(tests, (list, tuple)) and tests and problem.entry_point:
        cases = tuple(Case(list(c["args"]), "eq", c["expected"]) for c in tests)
        return _call_plan(cases)
    if isinstance(tests, dict) and tests.get("inputs"):
        return GradingPlan("stdio", list(tests["inputs"]), outputs=tuple(tests["outputs"]))
    return None


@lru_cache(maxsize=4096)
def _plan_from_source(source: str, entry_point: str | None) -> GradingPlan:
    cases = cases_from_source(source, entry_point) if entry_point else None
    if cases is None:
        return GradingPlan("source", [source])
    return _call_plan(tuple(cases))


def _call_plan(cases: tuple) -> GradingPlan:
    for case in cases:
        encode(case.expected)  # TypeError for a value no program output could equal
    return GradingPlan("call", [encode(c.args) for c in cases], cases=cases)


def judge(plan: GradingPlan, result: SandboxResult) -> float | None:
    """1.0 / 0.0 from what the program produced; None when the sandbox could not run it."""
    if result.status == "error":
        return None
    if result.status != "ran":
        return 0.0
    if plan.mode == "source":
        return float(list(result.results) == [("verdict", "pass")])
    expected = plan.cases if plan.mode == "call" else plan.outputs
    if len(result.results) != len(expected):
        return 0.0
    for (kind, got), want in zip(result.results, expected):
        if kind == "raised":
            return 0.0
        if plan.mode == "call" and not (kind == "out" and passes(want, got)):
            return 0.0
        if plan.mode == "stdio" and not (kind == "stdout" and same_stdout(got, want)):
            return 0.0
    return 1.0


def passes(case: Case, out) -> bool:
    """Whether a returned plain value satisfies the case's assertion."""
    if case.check == "eq":
        return same_value(out, case.expected)
    if case.check == "ne":
        return not same_value(out, case.expected)
    if case.check == "true":
        return bool(out)
    if case.check == "false":
        return not out
    if case.check == "close":
        numbers = (int, float)
        return (
            type(out) in numbers
            and type(case.expected) in numbers
            and abs(out - case.expected) <= case.tolerance
        )
    raise ValueError(f"unknown check {case.check!r}")


def same_stdout(printed: str, expected: str) -> bool:
    """LiveCodeBench's `grade_stdio` comparison: both texts stripped and split into lines, each
    line stripped; the same number of lines, and each line equal as text or, failing that, as a
    sequence of numbers compared exactly with Decimal (so "3.0" matches "3", "1e2" matches "100")."""
    got, want = _stripped_lines(printed), _stripped_lines(expected)
    if len(got) != len(want):
        return False
    for line, expected_line in zip(got, want):
        if line == expected_line:
            continue
        numbers, expected_numbers = _decimals(line), _decimals(expected_line)
        if numbers is None or expected_numbers is None or numbers != expected_numbers:
            return False
    return True


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(word) for word in line.split()]
    except InvalidOperation:
        return None


__all__ = ["CodeVerifier", "extract_code", "same_stdout", "same_value", "grading_plan"]
