"""Regrade logged code completions with the code verifier as it is now, and count any score that
differs from the one logged: the check that a grader change leaves honest programs' scores alone.

    python benchmarks/regrade.py runs/quickstart              # every eval file of a run
    python benchmarks/regrade.py runs/study --limit 4000      # a study folder, first 4000 rows
    python benchmarks/regrade.py runs/quickstart --batched    # as the loop grades: per eval file

`--batched` grades each eval file's rows together through `grade_by_domain`, as the loop does, so
a row that repeats an earlier row's problem and completion gets that row's verdict instead of a
run of its own; without it every row is run.

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
from uniopd.verifiers import get_verifier, grade_by_domain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="at most this many rows (0: all)")
    parser.add_argument("--batched", action="store_true", help="grade per eval file, as the loop")
    args = parser.parse_args()

    problems = {p.id: p for p in builtin_problems("code", "test")}
    files: list[list[dict]] = []  # each eval file's rows: one batch of the loop
    for folder in args.folders:
        for path in sorted(folder.rglob("eval/step_*.jsonl")):
            files.append([])
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row["domain"] == "code" and row["prompt_id"] in problems:
                    files[-1].append(row)
    rows = [r for batch in files for r in batch]
    if args.limit:
        rows = rows[: args.limit]
    batches = [rows]
    if args.batched:
        batches, left = [], len(rows)
        for batch in files:
            batches.append(batch[:left])
            left -= len(batches[-1])
    verifier = get_verifier("code")
    try:
        start = time.perf_counter()
        scores = []
        for batch in batches:
            asked = [problems[r["prompt_id"]] for r in batch]
            said = [r["completion"] for r in batch]
            scores += (
                grade_by_domain({"code": verifier}, asked, said)
                if args.batched
                else verifier.grade(asked, said)
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
                "rows_per_s": round(len(rows) / seconds, 1),
                "batched": args.batched,
                "isolation": verifier.sandbox.isolation(),
            }
        )
    )


if __name__ == "__main__":
    main()
