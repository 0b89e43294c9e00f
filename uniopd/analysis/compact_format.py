"""The compact data form's file format (docs/study.md): a study's metrics and eval rows as one
parquet table (float32), the run table and the layout in the file's metadata. Frames in, frames
out: uniopd/analysis/runs.py reads such a file as it reads run directories, and
uniopd/analysis/compact.py writes one from runs (the command). Needs pyarrow (the `test` extra).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

INFO_KEY = b"uniopd.run_table"  # the run table, as JSON records
SKIPPED_KEY = b"uniopd.left_out"
JOINED_KEY = b"uniopd.joined"  # per table, the columns left out of its rows, joined back on reading
COLUMNS_KEY = b"uniopd.columns"  # per table, its own columns (the file holds their union)
FROM_INFO = ["experiment", "seed", "group"]  # per run: in the run table, not in every row
KEYS = ["table", "run", "step", "domain"]


class CompactDataError(ValueError):
    """A file that is not a study's compact data (no run table in its metadata)."""


def _narrow(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float32 (the step as int32), the rest as it is: a tenth of a point of accuracy
    is far above float32's 7 digits."""
    out = df.copy()
    for col in out.columns:
        if col in KEYS[:2] or col == "domain":
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        if values.notna().sum() == out[col].notna().sum():  # every value a number (or missing)
            out[col] = values.astype(np.int32 if col == "step" else np.float32)
    return out


def joined_columns(info: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Per table, the run-table columns its rows repeat: left out of the file, joined back."""
    return {
        name: [c for c in FROM_INFO if c in frame and c in info] for name, frame in tables.items()
    }


def to_table(info: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The metrics and eval rows (`tables`: {"metrics": ..., "evals": ...}) as one frame."""
    parts, joined = [], joined_columns(info, tables)
    for name, frame in tables.items():
        if len(frame):
            parts.append(frame.drop(columns=joined[name]).assign(table=name))
    if not parts:
        return pd.DataFrame(columns=KEYS)
    table = pd.concat(parts, ignore_index=True)
    first = [c for c in KEYS if c in table]
    return _narrow(table[first + [c for c in table.columns if c not in first]])


def write_frames(
    info: pd.DataFrame,
    metrics: pd.DataFrame,
    evals: pd.DataFrame,
    skipped: list[tuple[str, str]],
    out: Path,
) -> int:
    """The run table, metrics and eval rows into the parquet file `out`; its size in bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = {"metrics": metrics, "evals": evals}
    table = pa.Table.from_pandas(to_table(info, tables), preserve_index=False)
    records = info.astype(object).where(info.notna(), None).to_dict("records")
    meta = {
        INFO_KEY: json.dumps(records).encode(),
        SKIPPED_KEY: json.dumps(skipped).encode(),
        JOINED_KEY: json.dumps(joined_columns(info, tables)).encode(),
        COLUMNS_KEY: json.dumps({k: list(v) for k, v in tables.items()}).encode(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # no pandas schema and no column statistics: with a few hundred rows a run, the footer
    # they would add is larger than the numbers
    pq.write_table(
        table.replace_schema_metadata(meta),
        out,
        compression="zstd",
        write_statistics=False,
    )
    return out.stat().st_size


def read_frames(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list]:
    """(run table, metrics, evals, runs left out) of a compact file, with the columns analysis
    reads from run directories."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if not {INFO_KEY, JOINED_KEY, COLUMNS_KEY} <= set(meta):
        raise CompactDataError(f"{path}: not a study's compact data (no run table in it)")
    info = pd.DataFrame(json.loads(meta[INFO_KEY]))
    rows = table.to_pandas()
    joined, columns = json.loads(meta[JOINED_KEY]), json.loads(meta[COLUMNS_KEY])

    def part(name: str) -> pd.DataFrame:
        own = [c for c in columns[name] if c not in joined[name]]
        sel = rows.loc[rows.table == name, own].reset_index(drop=True)
        if sel.empty:
            return pd.DataFrame()
        sel = sel.merge(info[["run", *joined[name]]], on="run", how="left")[columns[name]]
        return sel.astype({c: float for c in sel.columns if sel[c].dtype == np.float32})

    metrics, evals = part("metrics"), part("evals")
    skipped = [tuple(s) for s in json.loads(meta.get(SKIPPED_KEY, b"[]"))]
    return info, metrics, evals, skipped
