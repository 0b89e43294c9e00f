"""Code verifier: run a response's program against the problem's tests in the sandbox.

Scores: 1.0 every test passes, 0.0 anything else (no code, syntax error, wrong answer, crash,
timeout, sys.exit), None when the sandbox itself failed or the problem has no usable tests.

The program is the last ```python fenced block of the response, or the whole response when it has
none. Test formats (see `Problem`):
  - a list of {"args": [...], "expected": value}: `entry_point(*args)` must equal `expected`;
  - Python source (HumanEval style): run after the program in the same namespace; if it defines
    `check`, `check(entry_point_function)` is called;
  - {"inputs": [str, ...], "outputs": [str, ...]} (LiveCodeBench / APPS stdin/stdout): the program
    runs as a script (`__name__ == "__main__"`) once per case with the input on stdin, and its
    stdout must match the expected output as LiveCodeBench's `grade_stdio` compares them.

All the cases of one response run as one sandbox job, under its limits (wall time, memory, ...).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

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
    if isinstance(problem.tests, dict) and problem.tests.get("inputs"):
        tests = problem.tests
        return functools.partial(run_stdio_cases, program, tests["inputs"], tests["outputs"])
    return None


# The three functions below run inside the sandbox's runner process, after the guard: they raise on
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


# A program may print at most this much per case beyond the expected output's own length: enough
# for any right answer, small enough that a flood is cut off long before memory runs out.
STDOUT_SLACK_BYTES = 1 << 20


def run_stdio_cases(program: str, inputs: list[str], outputs: list[str]) -> None:
    code = compile(program, "<solution>", "exec")
    for i, (given, expected) in enumerate(zip(inputs, outputs, strict=True)):
        printed = _run_as_script(code, given, len(expected.encode()) + STDOUT_SLACK_BYTES)
        if not same_stdout(printed, expected):
            raise AssertionError(f"case {i}: wrong output")


class _OutputLimit(BaseException):
    """Raised on the write that passes the limit (a BaseException: `except Exception` in the
    program does not swallow it; a bare `except:` may, so the buffer also remembers)."""


class _CappedBuffer(io.BytesIO):
    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.flooded = limit, False

    def write(self, data) -> int:  # type: ignore[override]
        if self.flooded or self.tell() + len(data) > self.limit:
            self.flooded = True
            raise _OutputLimit(f"more than {self.limit} bytes on stdout")
        return super().write(data)


def _run_as_script(code, stdin_text: str, limit: int) -> str:
    """What the program prints with `stdin_text` on stdin, run as `python program.py` would."""
    buffer = _CappedBuffer(limit)
    stdout = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    # a real text stream over bytes: programs read sys.stdin.buffer and write sys.stdout.buffer
    stdin = io.TextIOWrapper(io.BytesIO(stdin_text.encode()), encoding="utf-8")
    saved = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = stdin, stdout
    try:
        exec(code, _script_namespace(stdin_text))
    except SystemExit as stop:  # exit() / sys.exit(0) end a script normally
        if stop.code not in (None, 0):
            raise
    finally:
        sys.stdin, sys.stdout = saved
        if not buffer.flooded:
            try:
                stdout.flush()
            except _OutputLimit:
                pass
    if buffer.flooded:
        raise _OutputLimit(f"more than {limit} bytes on stdout")
    return buffer.getvalue().decode("utf-8", "replace")


def _script_namespace(stdin_text: str) -> dict:
    # The sandbox's guard sets exit, quit and open to None; a script may still end with exit() and
    # read its input with open(0), the competitive programmer's idiom, so those two come back.
    def open_stdin(file, mode="r", *args, **kwargs):
        if file != 0:
            raise PermissionError("open() is disabled in the sandbox; only open(0), stdin, reads")
        data = io.BytesIO(stdin_text.encode())
        return data if "b" in mode else io.TextIOWrapper(data, encoding="utf-8")

    return {"__name__": "__main__", "exit": sys.exit, "quit": sys.exit, "open": open_stdin}


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
