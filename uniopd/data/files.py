"""Problems from your own rows: a JSONL file, a JSON list, or a parquet table.

The columns a row may have, and how an experiment file maps other column names onto them, are
described in uniopd.data.rows; this module only reads the rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from uniopd.data.errors import DataError
from uniopd.data.rows import Table


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
    return Table(path.stem, list(seen), rows, base=path.parent)


def _jsonl_rows(path: Path, name: str) -> list[tuple[int, object]]:
    # Row numbers are line numbers, so a message points at the line to fix; blank lines are skipped.
    rows = []
    with path.open("rb") as f:
        for line_number, raw in enumerate(f, start=1):
            line = _utf8(raw, name, line_number)
            if not line.strip():
                continue
            try:
                rows.append((line_number, json.loads(line)))
            except RecursionError:
                raise DataError(f"{name}: line {line_number}: nested too deep to read") from None
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{name}: line {line_number}: invalid JSON: {err.msg} (column {err.colno})"
                ) from err
    return rows


def _json_rows(path: Path, name: str) -> list[tuple[int, object]]:
    raw = path.read_bytes()
    try:
        data = json.loads(_utf8(raw, name, None))
    except RecursionError:
        raise DataError(f"{name}: nested too deep to read as JSON") from None
    except json.JSONDecodeError as err:
        raise DataError(
            f"{name}: line {err.lineno}: invalid JSON: {err.msg} (column {err.colno})"
        ) from err
    if not isinstance(data, list):
        raise DataError(f"{name}: expected a JSON list of rows, got a {type(data).__name__}")
    return list(enumerate(data, start=1))


def _utf8(raw: bytes, name: str, line_number: int | None) -> str:
    """The text of a line (or a whole file), or a DataError naming the line and the byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = line_number or raw[: err.start].count(b"\n") + 1
        where = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{name}: line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
            f"{where}); save the file as UTF-8"
        ) from None


def _parquet_table(path: Path, name: str) -> Table:
    # pyarrow rather than pandas: to_pylist keeps nested columns (test cases, meta) as plain lists
    # and dicts, and nulls as None, where pandas would hand back numpy arrays and NaN.
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataError(f"{name}: not a readable parquet file: {err}") from err
    rows = list(enumerate(table.to_pylist(), start=1))
    return Table(path.stem, table.column_names, rows, base=path.parent)
