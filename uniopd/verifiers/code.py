"""Code verifier: run a response's program against the problem's tests in the sandbox.

Scores: 1.0 every test passes, 0.0 anything else (no code, syntax error, wrong answer, crash,
timeout, sys.exit), None when the sandbox itself failed or the problem has no usable tests.

The program is the last ```python fenced block of the response, or the whole response when it has
none. Test formats (see `Problem`):
  - a list of {"args": [...], "expected": value}: `entry_point(*args)` must equal `expected`;
  - Python source (HumanEval style): run after the program in the same namespace; if it defines
    `check`, `check(entry_point_function)` is called.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Sequence

from uniopd.tasks.problem import Problem
from uniopd.verifiers import VERIFIERS
from uniopd.verifiers.sandbox import Limits, Sandbox

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

    def __init__(self, limits: Limits = Limits(), max_parallel: int = 4):
        self.sandbox = Sandbox(limits, max_parallel)

    def grade(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[float | None]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        scores: list[float | None] = [None] * len(problems)
        jobs, slots = [], []
        for i, (problem, completion) in enumerate(zip(problems, completions)):
            job = make_job(problem, extract_code(completion))
            if job is None:
                logger.warning("problem %s has no usable tests; not graded", problem.id)
                continue
            jobs.append(job)
            slots.append(i)
        for i, result in zip(slots, self.sandbox.run(jobs)):
            scores[i] = None if result.status == "error" else float(result.status == "pass")
        return scores

    def close(self) -> None:
        self.sandbox.close()


def make_job(problem: Problem, program: str):
    """The sandbox job for one response: a picklable call of one of the two test runners below."""
    if isinstance(problem.tests, str):
        return functools.partial(run_test_source, program, problem.entry_point, problem.tests)
    if isinstance(problem.tests, (list, tuple)) and problem.tests and problem.entry_point:
        return functools.partial(run_io_cases, program, problem.entry_point, list(problem.tests))
    return None


# The two functions below run inside the sandbox's runner process, after the guard: they raise on
# the first failure and return on success.


def run_io_cases(program: str, entry_point: str, cases: list[dict]) -> None:
    fn = _exec_program(program).get(entry_point)
    if not callable(fn):
        raise NameError(f"the program does not define {entry_point}()")
    for i, case in enumerate(cases):
        out = fn(*case["args"])
        if not same_value(out, case["expected"]):
            raise AssertionError(f"case {i}: wrong output")


def run_test_source(program: str, entry_point: str | None, tests: str) -> None:
    namespace = _exec_program(program)
    namespace.pop("check", None)  # only a `check` the tests define is called
    exec(compile(tests, "<tests>", "exec"), namespace)
    if "check" in namespace:
        if entry_point not in namespace:
            raise NameError(f"the program does not define {entry_point}()")
        namespace["check"](namespace[entry_point])


def _exec_program(program: str) -> dict:
    # Not "__main__": a demo under `if __name__ == "__main__":` would run and often read stdin.
    namespace = {"__name__": "solution"}
    exec(compile(program, "<solution>", "exec"), namespace)
    return namespace


_PLAIN_TYPES = (bool, int, str, bytes, complex, type(None), set, frozenset)


def same_value(out, expected) -> bool:
    """`out == expected`, with a small tolerance for floats and lists/tuples interchangeable (JSON
    has no tuples). Only built-in types count: an object whose __eq__ always says True is a known
    reward hack, so a value of any other type is never equal."""
    if type(out) is float or type(expected) is float:
        numbers = (int, float)
        return (
            type(out) in numbers
            and type(expected) in numbers
            and math.isclose(out, expected, rel_tol=1e-6, abs_tol=1e-9)
        )
    if type(out) in (list, tuple) and type(expected) in (list, tuple):
        return len(out) == len(expected) and all(same_value(o, e) for o, e in zip(out, expected))
    if type(out) is dict and type(expected) is dict:
        return out.keys() == expected.keys() and all(
            same_value(out[k], expected[k]) for k in expected
        )
    return type(out) in _PLAIN_TYPES and type(expected) in _PLAIN_TYPES and out == expected
