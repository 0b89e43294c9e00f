"""What a run directory's lines become in TensorBoard: one scalar per number, under the tag the
run directory names it by (`reward`, `order/consistency_before`, `time/step`), and held-out
evaluations as `eval/<domain>/<figure>` (`eval/math/acc`). The live board and the
`tracking.tensorboard` mirror both write these, so a curve reads the same either way."""

from __future__ import annotations

import math
from collections.abc import Iterator


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def metric_scalars(record: dict) -> Iterator[tuple[str, float]]:
    """A metrics.jsonl line's scalars (its step aside)."""
    for key, value in record.items():
        if key != "step" and _number(value):
            yield key, float(value)


def eval_scalars(record: dict) -> Iterator[tuple[str, float]]:
    """An eval.jsonl line's scalars: each domain's accuracy, pass@k, lengths."""
    for domain, entry in record.items():
        if isinstance(entry, dict):
            for key, value in entry.items():
                if _number(value):
                    yield f"eval/{domain}/{key}", float(value)
