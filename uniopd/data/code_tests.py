"""The test formats a code row may carry, checked and brought to the forms the verifier runs.

Three forms reach `Problem.tests` (uniopd/verifiers/code.py runs each):
    Python source            HumanEval style: `check(candidate)` or plain asserts
    [{"args": [...], "expected": value}, ...]     function cases on `entry_point`
    {"inputs": [str, ...], "outputs": [str, ...]}   stdin/stdout cases (LiveCodeBench, APPS)

Accepted on input besides those: the stdin/stdout dict as a JSON string (APPS' `input_output`
column), with APPS' optional `fn_name`, which makes the cases call-based: they become function
cases on `fn_name` (each input a list of arguments); and a list of {"input": str, "output": str}
cases (LiveCodeBench's public tests).
"""

from __future__ import annotations

import json

from uniopd.data.errors import DataError

CASE_FORM = "{'args': [...], 'expected': value}"
STDIO_FORM = "{'inputs': [str, ...], 'outputs': [str, ...]}"


def normalize_tests(
    tests: object, entry_point: str | None, where: str
) -> tuple[object, str | None]:
    """(tests, entry_point) in a form the verifier runs; a DataError naming `where` otherwise."""
    if isinstance(tests, str):
        if not tests.strip():
            raise DataError(f"{where}: field 'tests' is empty")
        if tests.lstrip().startswith("{"):  # Python source never starts with a dict literal
            try:
                tests = json.loads(tests)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{where}: field 'tests' starts like a JSON object but is not valid JSON: "
                    f"{err.msg} (column {err.colno})"
                ) from err
        else:
            return tests, entry_point
    if isinstance(tests, dict):
        return _stdio(tests, entry_point, where)
    if isinstance(tests, list) and tests and all(isinstance(c, dict) for c in tests):
        if all("input" in c for c in tests):  # LiveCodeBench's [{"input", "output"}, ...]
            return _stdio(
                {
                    "inputs": [c["input"] for c in tests],
                    "outputs": [c.get("output") for c in tests],
                },
                entry_point,
                where,
            )
        return _function_cases(tests, entry_point, where), entry_point
    raise DataError(
        f"{where}: field 'tests' must be Python source, a non-empty list of {CASE_FORM} cases or "
        f"stdin/stdout cases {STDIO_FORM}, got {_short(tests)}"
    )


def _function_cases(cases: list, entry_point: str | None, where: str) -> list:
    if entry_point is None:
        raise DataError(f"{where}: missing field 'entry_point': test cases need the function name")
    for i, case in enumerate(cases):
        if not (
            isinstance(case, dict) and isinstance(case.get("args"), list) and "expected" in case
        ):
            raise DataError(f"{where}: field 'tests': case {i} must be {CASE_FORM}, got {case!r}")
    return cases


def _stdio(tests: dict, entry_point: str | None, where: str) -> tuple[object, str | None]:
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    if not isinstance(inputs, list) or not inputs:
        raise DataError(
            f"{where}: field 'tests': stdin/stdout cases need a non-empty 'inputs' list "
            f"({STDIO_FORM}), got {_short(tests)}"
        )
    if not isinstance(outputs, list) or len(outputs) != len(inputs) or None in outputs:
        given = (
            "no 'outputs'"
            if not isinstance(outputs, list)
            else f"{sum(o is not None for o in outputs)} expected outputs"
        )
        raise DataError(
            f"{where}: field 'tests': {len(inputs)} inputs but {given}: every stdin/stdout case "
            "needs its expected output"
        )
    fn_name = tests.get("fn_name")
    if fn_name:  # APPS: call-based cases, each input a list of arguments
        if not isinstance(fn_name, str):
            raise DataError(f"{where}: field 'tests': 'fn_name' must be a string, got {fn_name!r}")
        cases = [
            {"args": args if isinstance(args, list) else [args], "expected": out}
            for args, out in zip(inputs, outputs)
        ]
        return cases, fn_name
    for key, values in (("inputs", inputs), ("outputs", outputs)):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise DataError(
                f"{where}: field 'tests': {key}[{bad}] must be text (what stdin gets / what "
                f"stdout must show), got {_short(values[bad])}"
            )
    return {"inputs": inputs, "outputs": outputs}, entry_point


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
