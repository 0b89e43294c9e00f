"""Run study v2's pre-registered runs (docs/study.md) as one queue, a few at a time, resumably.

    python benchmarks/study_v2_queue.py --root /work/study/runs --jobs 2
    python benchmarks/study_v2_queue.py --root /work/study/runs --list    # the queue, no runs

The order is seed-major, so that wherever the queue stops every cell has nearly the same seeds
and the finished pairs can already be read: for each seed, every cell that the design runs at
that seed (the 30-step cells at seeds 0-11, C1's and C4's at 0-19), the flaw-0 cells first (the
amendment of 2026-12-07 made them the first priority); the horizon cells (200 steps) slot in
after seed rounds 2, 5, 8 and 11. A run whose final evaluation is in its `eval.jsonl` is done and
skipped; an unfinished run folder (the queue was stopped) is moved to `ROOT/.aborted/` and run
again. Each run is `uniopd run FILE name=<name>-s<seed> seed=<seed> output.root=ROOT`, a
separate process, single-threaded (OMP_NUM_THREADS=1) so that two runs share two cores evenly;
`queue.log` in ROOT gets one line per run (name, exit code, seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

FOLDER = Path(__file__).resolve().parents[1] / "experiments" / "study_v2"

# (cell, last seed + 1): C1 and C4 at 20 seeds (amendment 2026-12-07), the rest at 12.
CELLS = [
    ("f0/opd", 20), ("f0/uniopd", 20), ("f0/shift_only", 12), ("f0/offline_only", 12),
    ("f0/online_only", 12), ("f0/bonus", 12),
    ("f0.6/opd", 20), ("f0.6/uniopd", 20), ("f0.6/shift_only", 20), ("f0.6/bonus", 20),
    ("skew/balance", 12), ("skew/none", 12), ("skew/drop_all_correct", 12),
    ("skew/drop_all_wrong", 12),
    ("online/r0.5", 12), ("online/r1.0", 12), ("online/r2.0", 12), ("online/rinf", 12),
    ("online/no_control", 12),
]  # fmt: skip
HORIZON = ["horizon/opd", "horizon/uniopd", "horizon/grpo"]
HORIZON_AFTER = {2: 0, 5: 1, 8: 2, 11: 3}  # after seed round r, the horizon cells at seed s


def queue() -> list[tuple[str, int]]:
    """(cell, seed) in the order they run."""
    order: list[tuple[str, int]] = []
    for seed in range(max(n for _, n in CELLS)):
        order += [(cell, seed) for cell, n in CELLS if seed < n]
        if seed in HORIZON_AFTER:
            order += [(cell, HORIZON_AFTER[seed]) for cell in HORIZON]
    return order


def run_name(cell: str, seed: int) -> str:
    return f"study2-{cell.replace('/', '-')}-s{seed}"


def finished(run_dir: Path) -> bool:
    """The run's final evaluation is written (the last thing a run does before its checkpoint)."""
    path = run_dir / "config.yaml"
    evals = run_dir / "eval.jsonl"
    if not (path.exists() and evals.exists()):
        return False
    steps = yaml.safe_load(path.read_text())["train"]["steps"]
    rows = [json.loads(line) for line in evals.read_text().splitlines() if line.strip()]
    return any(row.get("step") == steps for row in rows)


def run_one(cell: str, seed: int, root: Path) -> str:
    name = run_name(cell, seed)
    run_dir = root / name
    if finished(run_dir):
        return f"{name} skipped (done)"
    if run_dir.exists():
        aborted = root / ".aborted" / f"{name}-{int(time.time())}"
        aborted.parent.mkdir(exist_ok=True)
        shutil.move(str(run_dir), aborted)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    command = [
        sys.executable, "-m", "uniopd.commands.cli", "run", str(FOLDER / f"{cell}.yaml"),
        f"name={name}", f"seed={seed}", f"output.root={root}",
    ]  # fmt: skip
    start = time.time()
    with open(root / "logs" / f"{name}.txt", "w") as log:
        rc = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    line = f"{name} rc={rc} {time.time() - start:.0f} s"
    with open(root / "queue.log", "a") as out:
        out.write(line + "\n")
    return line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True, help="folder of the study's run folders")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--list", action="store_true", help="print the queue and what is done; no runs")
    args = p.parse_args(argv)
    order = queue()
    if args.list:
        for cell, seed in order:
            done = finished(args.root / run_name(cell, seed))
            print(f"{'done' if done else 'todo'}  {run_name(cell, seed)}")
        todo = sum(not finished(args.root / run_name(c, s)) for c, s in order)
        print(f"{len(order)} runs, {todo} to do")
        return 0
    (args.root / "logs").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda item: run_one(*item, args.root), order):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
