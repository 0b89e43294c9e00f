"""The study's runs in one small file (docs/study.md): every run's per-step metrics and
evaluations as one parquet table (float32) with the run table (config columns) in its metadata,
so that a study's figures and verdicts can be recomputed from the repository after its run
directories are gone. The format: uniopd/analysis/compact_format.py.

    python -m uniopd.analysis.compact runs/study_v2 --out paper_figures/study_v2/study_v2.parquet
    uniopd figures paper_figures/study_v2/study_v2.parquet --out figures/study_v2

Rows are the metrics rows and the eval rows (with their `domain`); the columns every row repeats
from the run table (experiment, seed, group) are left out and joined back on reading. What is not
per-step numbers stays in the run directories and is not kept: rollouts, pairs.jsonl, difficulty
estimates, checkpoints (the figures drawn from those are listed as missing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uniopd.analysis.compact_format import read_frames, write_frames
from uniopd.analysis.runs import Runs, load_runs


def write_compact(runs: Runs, out: Path) -> int:
    """`runs` into the parquet file `out`; its size in bytes."""
    return write_frames(runs.info, runs.metrics, runs.evals, runs.skipped, out)


def read_compact(path: Path) -> Runs:
    """The `Runs` a compact file holds (load_runs reads one the same way)."""
    return Runs(*read_frames(path))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m uniopd.analysis.compact",
        description="run directories (or folders of them) into one parquet file",
    )
    p.add_argument("runs", nargs="+", help="run directories or folders of them")
    p.add_argument("--out", required=True, help="the parquet file to write")
    args = p.parse_args(argv)
    missing = [r for r in args.runs if not Path(r).exists()]
    if missing:
        print(f"compact: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = load_runs(args.runs)
    if runs.info.empty:
        print(f"compact: no finished runs in {', '.join(args.runs)}", file=sys.stderr)
        return 2
    size = write_compact(runs, Path(args.out))
    print(f"{args.out}: {len(runs.info)} runs, {size} bytes ({size // len(runs.info)} a run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
