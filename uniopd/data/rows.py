"""Rows of a table (a file, a Hugging Face dataset) into `Problem`s, through a column mapping.

A row's fields, under these names unless the source's `columns` mapping names other columns
(`columns: {prompt: question, answer: final_answer}`):
    prompt (str, or a chat: a list of {"role", "content"})   required
    domain (str)                      required, unless the source gives a constant `domain`
    answer (str; a number is kept as its text)   for math-style grading
    tests                             for code (uniopd.data.code_tests lists the forms)
    entry_point (str)                 required for function cases
    id (str or int)                   default `<table stem>-<row index>`, the index counting from 0
    solution (str)                    a reference response, for supervised warm starts
    images (path, bytes or a list)    the row's images (uniopd.data.images): paths relative to
                                      the data file, encoded bytes, `datasets` image columns
    pass_rate (number in [0, 1])      a precomputed pass rate: offline balancing uses it instead
                                      of sampling (uniopd/loop/difficulty.py); kept in `meta`
    meta (dict)                       merged with every other column, which all go to `meta`

A mapped column may be a dotted path into a struct column (`tests: reward_model.ground_truth`).
A column named like a field that the mapping fills from another column (a `domain` column beside
`columns: {domain: ability}`, or beside a constant `domain`) is not read.

A chat prompt fills `Problem.messages` and puts its last user turn in `Problem.prompt`. A row
needs `answer` or `tests`, or no verifier could grade it. A null value counts as a missing column,
so the same rows give the same problems from JSONL, parquet and a dataset. Messages count rows
from 1, like an editor counts lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from uniopd.data.code_tests import normalize_tests
from uniopd.data.errors import DataError
from uniopd.data.images import check_placeholders, row_images
from uniopd.tasks.problem import Problem

FIELDS = (
    "id",
    "domain",
    "prompt",
    "answer",
    "tests",
    "entry_point",
    "solution",
    "pass_rate",
    "images",
)
KNOWN = {*FIELDS, "meta"}


@dataclass
class Table:
    """What a row source read: its column names and its rows, each with the number messages use."""

    stem: str  # default ids are `<stem>-<index>`
    columns: list[str]
    rows: list[tuple[int, object]]
    base: Path | None = None  # where relative image paths start (a data file's folder)


def problems_from_table(
    table: Table,
    *,
    name: str,
    columns: dict[str, str] | None = None,
    domain: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The problems of `table`'s rows (the first `limit`); `name` is how messages refer to it."""
    rename = _check_mapping(table, name, columns or {}, domain)
    problems: list[Problem] = []
    first_row_of: dict[str, int] = {}
    for index, (row_number, row) in enumerate(table.rows[:limit]):
        where = f"{name}: row {row_number}"
        problem = _problem(
            _renamed(row, rename, where),
            where,
            f"{table.stem}-{index}",
            domain=domain,
            base=table.base,
        )
        if problem.id in first_row_of:
            raise DataError(
                f"{where}: duplicate id {problem.id!r} (first used in row {first_row_of[problem.id]})"
            )
        first_row_of[problem.id] = row_number
        problems.append(problem)
    return problems


def _check_mapping(
    table: Table, name: str, columns: dict[str, str], domain: str | None
) -> dict[str, str]:
    """column -> field, for the mapped columns; every mapped column must be in the table."""
    for key, column in columns.items():
        if key not in FIELDS:
            raise DataError(
                f"{name}: columns.{key}: not a field a row can fill; the fields are "
                f"{', '.join(FIELDS)}"
            )
        if column not in table.columns and column.split(".")[0] not in table.columns:
            raise DataError(
                f"{name}: columns.{key}: the data has no column {column!r}; its columns are "
                f"{', '.join(map(repr, table.columns)) or 'none'}"
            )
    if domain is not None and "domain" in columns:
        raise DataError(
            f"{name}: both a constant domain ({domain!r}) and columns.domain "
            f"({columns['domain']!r}) are given; keep one"
        )
    return {column: key for key, column in columns.items()}


def _renamed(row: object, rename: dict[str, str], where: str) -> dict:
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected an object with named fields, got a {type(row).__name__}"
        )
    # a column named like a field that the mapping fills from another column is not read
    mapped = set(rename.values())
    out = {
        rename.get(key, key): value
        for key, value in row.items()
        if key in rename or key not in mapped
    }
    for column, field in rename.items():
        if column not in row and "." in column:
            out[field] = _nested(row, column, where)
    return out


def _nested(row: dict, column: str, where: str) -> object:
    """A value inside a struct column, named by a dotted path (`reward_model.ground_truth`, as
    verl-format parquet files hold the ground truth)."""
    value: object = row
    for depth, key in enumerate(column.split(".")):
        if value is None:
            return None  # a null struct: the field is missing, as a null column would be
        if not isinstance(value, dict) or key not in value:
            inside = ".".join(column.split(".")[:depth]) or "the row"
            have = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise DataError(f"{where}: column {column!r}: {inside} has no key {key!r} ({have})")
        value = value[key]
    return value


def _problem(
    row: dict, where: str, default_id: str, *, domain: str | None, base: Path | None = None
) -> Problem:
    row = {key: value for key, value in row.items() if value is not None}
    if domain is not None:
        row.pop("domain", None)  # the constant wins; a column of that name is not read

    def text(field: str, *, numbers: bool = False) -> str | None:
        """The field as non-empty text (None when missing); a DataError for anything else."""
        value = row.get(field)
        if value is None:
            return None
        if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            kind = "a non-empty string" + (" or a number" if numbers else "")
            raise DataError(f"{where}: field {field!r} must be {kind}, got {value!r}")
        return value

    # a missing field names the columns the row has, and how a source maps one onto the field
    have = f"; the row's columns: {', '.join(map(str, sorted(row))) or 'none'}"
    if "prompt" not in row:
        raise DataError(
            f"{where}: missing field 'prompt'{have}; map one with columns: {{prompt: <column>}}"
        )
    prompt, messages = _prompt(row["prompt"], where)
    domain = domain or text("domain")
    if domain is None:
        raise DataError(f"{where}: missing field 'domain'{have}; or give the source a domain")
    answer, solution = text("answer", numbers=True), text("solution")
    entry_point = text("entry_point")
    tests = row.get("tests")
    if answer is None and tests is None:
        raise DataError(
            f"{where}: missing field 'answer' or 'tests': a row needs one to be graded{have}"
        )
    if tests is not None:
        tests, entry_point = normalize_tests(tests, entry_point, where)
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object, got {meta!r}")
    meta = {**meta, **{key: value for key, value in row.items() if key not in KNOWN}}
    if "pass_rate" in row:
        meta["pass_rate"] = _pass_rate(row["pass_rate"], where)
    images = row_images(row["images"], where, base) if "images" in row else ()
    texts = [turn["content"] for turn in messages] if messages else [prompt]
    check_placeholders(texts, len(images), where)
    return Problem(
        id=text("id", numbers=True) or default_id,
        domain=domain,
        prompt=prompt,
        answer=answer,
        tests=tests,
        entry_point=entry_point,
        solution=solution,
        meta=meta,
        messages=messages,
        images=images,
    )


def _prompt(value: object, where: str) -> tuple[str, list | None]:
    """(the question, the chat when the prompt is one)."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: field 'prompt' must be a non-empty string, got {value!r}")
        return value, None
    if isinstance(value, list) and value and all(isinstance(turn, dict) for turn in value):
        for i, turn in enumerate(value):
            if not (isinstance(turn.get("role"), str) and isinstance(turn.get("content"), str)):
                raise DataError(
                    f"{where}: field 'prompt': turn {i} of the chat must be "
                    f"{{'role': str, 'content': str}}, got {turn!r}"
                )
        users = [turn["content"] for turn in value if turn["role"] == "user"]
        if not users or not users[-1].strip():
            raise DataError(f"{where}: field 'prompt': the chat has no non-empty user turn")
        return users[-1], [{"role": t["role"], "content": t["content"]} for t in value]
    raise DataError(
        f"{where}: field 'prompt' must be a non-empty string or a chat (a list of "
        f"{{'role', 'content'}}), got {value!r}"
    )


def _pass_rate(value: object, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (0.0 <= value <= 1.0)
        or math.isnan(value)
    ):
        raise DataError(f"{where}: field 'pass_rate' must be a number in [0, 1], got {value!r}")
    return float(value)
