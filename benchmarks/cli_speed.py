"""How fast the command line answers: `uniopd --help`, `uniopd list` and `uniopd fields`, each
a fresh process as a user starts it (the venv's script, not activated), best and median of N:
wall seconds, and CPU seconds (user + system) of the process. The target is checked on the CPU
seconds, which are what the command costs; on an idle machine the wall time is the same, on a
shared one it also counts the wait for a core.

    python benchmarks/cli_speed.py              # 5 runs each; fails (exit 1) above the target
    python benchmarks/cli_speed.py --runs 10 --target 0.5 --json

The target (0.5 s) holds because these commands import no torch or transformers: the parsers are
built without the commands' heavy modules, and list / fields defer torch (uniopd/commands/
deferred.py). The figures depend on the machine and its load: say which with them.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["list"], ["fields"])


def script() -> str:
    """The `uniopd` script of the interpreter running this (the venv's), as README runs it."""
    found = Path(sys.executable).parent / "uniopd"
    return str(found) if found.exists() else "uniopd"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of each run."""
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), _children_cpu()
        subprocess.run([script(), *args], check=True, capture_output=True)
        wall.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - c0)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per command (default 5)")
    ap.add_argument("--target", type=float, default=0.5, help="seconds the best run must beat")
    ap.add_argument("--json", action="store_true", help="one JSON record instead of a table")
    args = ap.parse_args()
    rows = {}
    for command in COMMANDS:
        wall, cpu = time_command(command, args.runs)
        rows[" ".join(command)] = {
            "wall_best_s": round(min(wall), 3),
            "wall_median_s": round(statistics.median(wall), 3),
            "cpu_best_s": round(min(cpu), 3),
            "cpu_median_s": round(statistics.median(cpu), 3),
        }
    slow = [name for name, row in rows.items() if row["cpu_best_s"] > args.target]
    if args.json:
        print(json.dumps({"runs": args.runs, "target_s": args.target, "commands": rows}))
    else:
        print(f"{'uniopd ...':12} {'wall best':>10} {'median':>8} {'cpu best':>10} {'median':>8}")
        for name, r in rows.items():
            print(
                f"{name:12} {r['wall_best_s']:10.3f} {r['wall_median_s']:8.3f} "
                f"{r['cpu_best_s']:10.3f} {r['cpu_median_s']:8.3f}"
            )
        verdict = f"slower: {slow}" if slow else "all met"
        print(f"target: best CPU s <= {args.target} ({args.runs} runs each); {verdict}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
