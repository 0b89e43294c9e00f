"""Regrade logged code completions with the code verifier as it is now, and count any score that
differs from the one logged: the check that a grader change leaves honest programs' scores alone.

    python benchmarks/regrade.py runs/quickstart              # every eval file of a run
    python benchmarks/regrade.py runs/study --limit 4000      # a study folder, first 4000 rows

Reads `eval/step_*.jsonl` under the given folders (rows of the `code` domain of the built-in
world, matched to their problem by `prompt_id`), prints one JSON line: rows regraded, rows whose
score changed (with the first few), the mean accuracy logged and now, and programs per second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from uniopd.tasks.builtin import builtin_problems
from uniopd.verifiers import get_verifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="at most this many rows (0: all)")
    args = parser.parse_args()

    problems = {p.id: p for p in builtin_problems("code", "test")}
    rows = []
    for folder in args.folders:
        for path in sorted(folder.rglob("eval/step_*.jsonl")):
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row["domain"] == "code" and row["prompt_id"] in problems:
                    rows.append(row)
    if args.limit:
        rows = rows[: args.limit]
    verifier = get_verifier("code")
    try:
        start = time.perf_counter()
        scores = verifier.grade(
            [problems[r["prompt_id"]] for r in rows], [r["completion"] for r in rows]
        )
        seconds = time.perf_counter() - start
    finally:
        verifier.close()
    changed = [
        {"prompt_id": r["prompt_id"], "logged": r["reward"], "now": s}
        for r, s in zip(rows, scores)
        if s != r["reward"]
    ]
    mean = lambda xs: round(sum(x or 0 for x in xs) / max(1, len(xs)), 4)  # noqa: E731
    print(
        json.dumps(
            {
                "rows": len(rows),
                "changed": len(changed),
                "first_changed": changed[:5],
                "accuracy_logged": mean([r["reward"] for r in rows]),
                "accuracy_now": mean(scores),
                "programs_per_s": round(len(rows) / seconds, 1),
                "isolation": verifier.sandbox.isolation(),
            }
        )
    )


if __name__ == "__main__":
    main()
