"""Problems from your own rows: a JSONL file, a JSON list, or a parquet table.

The columns a row may have, and how an experiment file maps other column names onto them, are
described in uniopd.data.rows; this module only reads the rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from uniopd.data.rows import Table
from uniopd.data.sources import DataError


def read_file_table(path: Path, name: str) -> Table:
    """The rows of `path`; `name` is how messages refer to it (the spec)."""
    if not path.is_file():
        raise DataError(f"{name}: file not found (looked at {path.resolve()})")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet_table(path, name)
    rows = (_jsonl_rows if suffix == ".jsonl" else _json_rows)(path, name)
    seen: dict[str, None] = {}  # the union of the rows' keys, in first-seen order
    for _, row in rows:
        if isinstance(row, dict):
            seen.update(dict.fromkeys(row))
    return Table(path.stem, list(seen), rows)


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


def _parquet_table(path: Path, name: str) -> Table:
    # pyarrow rather than pandas: to_pylist keeps nested columns (test cases, meta) as plain lists
    # and dicts, and nulls as None, where pandas would hand back numpy arrays and NaN.
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataError(f"{name}: not a readable parquet file: {err}") from err
    return Table(path.stem, table.column_names, list(enumerate(table.to_pylist(), start=1)))
