"""Preference pairs from a file, in the usual preference-data shape: one row per pair with
`prompt`, `chosen`, `rejected` and optionally `scores` ([S_w, S_l], or the columns
`score_chosen` / `score_rejected` of the Omni-DPO release), from JSONL, a JSON list, parquet, or a
`datasets` folder written by `Dataset.save_to_disk`. A conversational row (a list of
{role, content} messages, as TRL's datasets hold) reads as its user turns and its last assistant
turn. Every row is checked before anything is computed; a bad one is refused naming the file,
the row (its line in JSONL) and the column.

`pair_problems` makes each pair a training Problem (its prompt and domain, the pair in `meta`):
the prompt sampler, the student's prompt template and the teacher routing then treat a pair file
as any prompt source, and uniopd.loop.pair_batches turns the step's pairs into rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from uniopd.data.errors import DataError
from uniopd.data.files import read_file_table
from uniopd.tasks.problem import Problem

COLUMNS = ("prompt", "chosen", "rejected")
# the domain of a pair whose row names none: no verifier grades it (file pairs are not graded),
# and a teacher score needs `teachers.preference`
DEFAULT_DOMAIN = "preference"


@dataclass(frozen=True)
class PreferencePair:
    id: str
    prompt: str
    chosen: str
    rejected: str
    score_chosen: float | None = None
    score_rejected: float | None = None
    domain: str | None = None
    row: int = 0  # where it is in the file (its line in JSONL), for messages


def pair_problems(
    path: str | Path, limit: int | None = None, need_scores: bool = False
) -> list[Problem]:
    """The first `limit` pairs of `path` as training problems. `need_scores`: every pair must
    carry its scores (an objective reads them: score: file)."""
    pairs = load_pair_file(path)[:limit]
    if need_scores:
        bare = [p for p in pairs if p.score_chosen is None]
        if bare:
            raise DataError(
                f"{path}: row {bare[0].row}: no scores column, but the objective reads each "
                f"pair's scores (score: file); {len(bare)} of {len(pairs)} rows have none: add "
                "scores ([S_w, S_l]) or use score: verifier"
            )
    return [
        Problem(
            id=p.id,
            domain=p.domain or DEFAULT_DOMAIN,
            prompt=p.prompt,
            meta={
                "chosen": p.chosen,
                "rejected": p.rejected,
                "score_chosen": p.score_chosen,
                "score_rejected": p.score_rejected,
                "pair_row": p.row,
            },
        )
        for p in pairs
    ]


def load_pair_file(path: str | Path) -> list[PreferencePair]:
    """Every pair of `path`, checked; a DataError names the file, the row and the column."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        rows = _dataset_rows(path, name)
    else:
        rows = read_file_table(path, name).rows
    if not rows:
        raise DataError(f"{name}: no pairs (the file has no rows)")
    pairs = [_pair(row, n, name) for n, row in rows]
    first: dict[str, int] = {}
    for p in pairs:  # an id names one pair: the sampler's state and the logs key on it
        if p.id in first:
            raise DataError(f"{name}: row {p.row}: id {p.id!r} is already row {first[p.id]}'s")
        first[p.id] = p.row
    return pairs


def _dataset_rows(path: Path, name: str) -> list[tuple[int, object]]:
    try:
        from datasets import load_from_disk

        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{name}: not a datasets folder (Dataset.save_to_disk): {exc}") from None
    if hasattr(data, "keys"):  # a DatasetDict: its train split
        if "train" not in data:
            raise DataError(f"{name}: a DatasetDict without a 'train' split: {list(data.keys())}")
        data = data["train"]
    return [(i, row) for i, row in enumerate(data, start=1)]


def _pair(row: object, n: int, name: str) -> PreferencePair:
    where = f"{name}: row {n}"
    if not isinstance(row, dict):
        raise DataError(f"{where}: a pair is an object with {', '.join(COLUMNS)}")
    missing = [c for c in COLUMNS if c not in row or row[c] is None]
    if missing:
        raise DataError(
            f"{where}: missing column {', '.join(missing)} (a pair has {', '.join(COLUMNS)}, "
            f"optionally scores); the row has {sorted(row)}"
        )
    prompt = _text(row["prompt"], where, "prompt", "user")
    chosen = _text(row["chosen"], where, "chosen", "assistant")
    rejected = _text(row["rejected"], where, "rejected", "assistant")
    for column, text in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise DataError(f"{where}: column {column} is empty")
    if chosen.strip() == rejected.strip():
        raise DataError(f"{where}: chosen and rejected are the same response: nothing to prefer")
    sw, sl = _scores(row, where)
    domain = row.get("domain")
    if domain is not None and (not isinstance(domain, str) or not domain.strip()):
        raise DataError(f"{where}: column domain must be a non-empty name, got {domain!r}")
    pair_id = f"pair-{n}" if row.get("id") is None else str(row["id"])
    return PreferencePair(pair_id, prompt, chosen, rejected, sw, sl, domain, n)


def _text(value: object, where: str, column: str, role: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        turns = [str(m["content"]) for m in value if m.get("role", role) == role]
        if turns:  # the prompt's user turns; a response's last assistant turn
            return "\n".join(turns) if role == "user" else turns[-1]
    raise DataError(
        f"{where}: column {column} must be text or a list of {{role, content}} messages"
    )


def _scores(row: dict, where: str) -> tuple[float | None, float | None]:
    if "scores" in row and row["scores"] is not None:
        value = row["scores"]
        if not (isinstance(value, list | tuple) and len(value) == 2):
            raise DataError(f"{where}: column scores must be [score_chosen, score_rejected]")
        pair = value
    elif "score_chosen" in row or "score_rejected" in row:
        pair = [row.get("score_chosen"), row.get("score_rejected")]
    else:
        return None, None
    out = []
    for label, v in zip(("score_chosen", "score_rejected"), pair, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise DataError(f"{where}: column scores: {label} must be a finite number, got {v!r}")
        out.append(float(v))
    return out[0], out[1]
