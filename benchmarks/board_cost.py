"""What the TensorBoard side costs: the `tracking.tensorboard` mirror per training step, and
`uniopd board`'s start over a folder of runs.

    python benchmarks/board_cost.py                       # the mirror on a synthetic 45-metric step
    python benchmarks/board_cost.py --runs runs/study     # and the board's start over those runs

The mirror is timed on records shaped like a Uni-OPD step's metrics.jsonl line (45 numbers), written
to a temporary run directory; the board's start is the time to label every run, turn its lines
into events, bring TensorBoard up on a free port and answer its first run listing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace


def mirror_cost(steps: int) -> dict:
    from uniopd.config import ExperimentConfig
    from uniopd.tracking.mirrors import TensorBoardTracker

    cfg = ExperimentConfig.model_validate(
        {
            "name": "bench",
            "student": "builtin:student",
            "teachers": {"math": "builtin:teacher-math"},
            "data": {"train": ["builtin:math/train"]},
        }
    )
    keys = [f"metric/{i}" for i in range(45)]
    with tempfile.TemporaryDirectory() as tmp:
        tracker = TensorBoardTracker(cfg, SimpleNamespace(path=Path(tmp)))
        times = []
        for step in range(1, steps + 1):
            record = {"step": step, **{k: step * 0.001 + i for i, k in enumerate(keys)}}
            t0 = time.perf_counter()
            tracker.log_metrics(record)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tracker.log_eval(steps, {"math": {"acc": 0.5, "pass@1": 0.5}}, [])
        tracker.finish()
        close = time.perf_counter() - t0
    return {
        "steps": steps,
        "per_step_ms_median": round(1e3 * statistics.median(times), 3),
        "per_step_ms_p95": round(1e3 * sorted(times)[int(0.95 * len(times))], 3),
        "eval_and_close_ms": round(1e3 * close, 1),
    }


def board_start(runs: str) -> dict:
    from uniopd.board.command import free_port, prepare, start

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        board = prepare([runs], Path(tmp))
        t1 = time.perf_counter()
        lines = board.poll()
        t2 = time.perf_counter()
        url = start(board, free_port(0)[0])
        listed = json.loads(urllib.request.urlopen(url + "data/runs").read())
        t3 = time.perf_counter()
        board.stop()
    return {
        "runs": len(board.followers),
        "lines": lines,
        "listed": len(listed),
        "label_s": round(t1 - t0, 2),
        "events_s": round(t2 - t1, 2),
        "serve_and_list_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--runs", help="a folder of run directories to start the board over")
    args = ap.parse_args()
    print(json.dumps({"mirror": mirror_cost(args.steps)}))
    if args.runs:
        print(json.dumps({"board_start": board_start(args.runs)}))


if __name__ == "__main__":
    main()
