"""Problems from your own rows: a JSONL file, a JSON list, or a parquet table.

Columns of a row:
    prompt (str), domain (str)        required
    answer (str; a number is kept as its text)   for math-style grading
    tests (Python source, or a list of {"args": [...], "expected": value} cases)   for code
    entry_point (str)                 required when `tests` is a list of cases
    id (str or int)                   default `<file stem>-<row index>`, the index counting from 0
    solution (str)                    a reference response, for supervised warm starts
    meta (dict)                       merged with every other column, which all go to `meta`

A row needs `answer` or `tests`, or no verifier could grade it. A null value counts as a missing
column, so the same rows give the same problems from JSONL and from parquet (where a column that
some rows lack is null in the others). Error messages count rows from 1, like an editor counts lines.
"""

from __future__ import annotations

import json
from pathlib import Path

from uniopd.data.sources import DataError
from uniopd.tasks.problem import Problem

KNOWN = {"id", "domain", "prompt", "answer", "tests", "entry_point", "solution", "meta"}


def load_file(path: Path, *, name: str | None = None) -> list[Problem]:
    """Read and validate every row of `path`; `name` is how messages refer to it (the spec)."""
    name = name or str(path)
    if not path.is_file():
        raise DataError(f"{name}: file not found (looked at {path.resolve()})")
    suffix = path.suffix.lower()
    rows = {".jsonl": _jsonl_rows, ".json": _json_rows, ".parquet": _parquet_rows}[suffix](
        path, name
    )
    problems, first_row_of = [], {}
    for index, (row_number, row) in enumerate(rows):
        problem = _problem(row, name=name, row_number=row_number, default_id=f"{path.stem}-{index}")
        if problem.id in first_row_of:
            raise DataError(
                f"{name}: row {row_number}: duplicate id {problem.id!r} "
                f"(first used in row {first_row_of[problem.id]})"
            )
        first_row_of[problem.id] = row_number
        problems.append(problem)
    return problems


def _jsonl_rows(path: Path, name: str) -> list[tuple[int, object]]:
    # Row numbers are line numbers, so a message points at the line to fix; blank lines are skipped.
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append((line_number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{name}: line {line_number}: invalid JSON: {err.msg} (column {err.colno})"
                ) from err
    return rows


def _json_rows(path: Path, name: str) -> list[tuple[int, object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(
            f"{name}: line {err.lineno}: invalid JSON: {err.msg} (column {err.colno})"
        ) from err
    if not isinstance(data, list):
        raise DataError(f"{name}: expected a JSON list of rows, got a {type(data).__name__}")
    return list(enumerate(data, start=1))


def _parquet_rows(path: Path, name: str) -> list[tuple[int, object]]:
    # pyarrow rather than pandas: to_pylist keeps nested columns (test cases, meta) as plain lists
    # and dicts, and nulls as None, where pandas would hand back numpy arrays and NaN.
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataError(f"{name}: not a readable parquet file: {err}") from err
    return list(enumerate(table.to_pylist(), start=1))


def _problem(row: object, *, name: str, row_number: int, default_id: str) -> Problem:
    where = f"{name}: row {row_number}"
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected an object with named fields, got a {type(row).__name__}"
        )
    row = {key: value for key, value in row.items() if value is not None}

    def text(field: str, *, required: bool = False, numbers: bool = False) -> str | None:
        value = row.get(field)
        if value is None:
            if required:
                raise DataError(f"{where}: missing field {field!r}")
            return None
        if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            kind = "a non-empty string" + (" or a number" if numbers else "")
            raise DataError(f"{where}: field {field!r} must be {kind}, got {value!r}")
        return value

    prompt, domain = text("prompt", required=True), text("domain", required=True)
    answer, solution = text("answer", numbers=True), text("solution")
    entry_point = text("entry_point")
    tests = row.get("tests")
    if answer is None and tests is None:
        raise DataError(f"{where}: missing field 'answer' or 'tests': a row needs one to be graded")
    if tests is not None:
        _check_tests(tests, entry_point, where)
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object, got {meta!r}")
    meta = {**meta, **{key: value for key, value in row.items() if key not in KNOWN}}
    return Problem(
        id=text("id", numbers=True) or default_id,
        domain=domain,
        prompt=prompt,
        answer=answer,
        tests=tests,
        entry_point=entry_point,
        solution=solution,
        meta=meta,
    )


def _check_tests(tests: object, entry_point: str | None, where: str) -> None:
    if isinstance(tests, str):
        if not tests.strip():
            raise DataError(f"{where}: field 'tests' is empty")
        return
    if not isinstance(tests, list) or not tests:
        raise DataError(
            f"{where}: field 'tests' must be Python source or a non-empty list of "
            f"{{'args': [...], 'expected': value}} cases, got {tests!r}"
        )
    if entry_point is None:
        raise DataError(f"{where}: missing field 'entry_point': test cases need the function name")
    for i, case in enumerate(tests):
        if not (
            isinstance(case, dict) and isinstance(case.get("args"), list) and "expected" in case
        ):
            raise DataError(
                f"{where}: field 'tests': case {i} must be "
                f"{{'args': [...], 'expected': value}}, got {case!r}"
            )
