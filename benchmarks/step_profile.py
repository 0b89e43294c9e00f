"""Where a run's steps spend their time: seconds and share per phase, from metrics.jsonl.

    python benchmarks/step_profile.py runs/quickstart                  # a run directory
    python benchmarks/step_profile.py runs/quickstart/metrics.jsonl    # or its metrics file
    python benchmarks/step_profile.py experiments/quickstart.yaml --steps 3   # a fresh short run
    python benchmarks/step_profile.py runs/a runs/b --json out.json    # several, and a file

A fresh run goes to a temporary folder with no evaluation (train.steps as given, eval.before,
eval.after and eval.every off), so only the step's own phases are timed; extra `key=value`
arguments after `--set` go to `uniopd run` as they are. Each run prints one table: every phase
logged as `time/<phase>` (rollout, verify, teacher, update, balance, calibrate, ...), its sum over
the steps, its share of the step time, and its mean per step, first step apart (start-up: the
sandbox, caches, the allocator's first sizes). Figures are read, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def _fail(message: str):
    print(f"step_profile: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_steps(path: Path) -> list[dict]:
    """Per-step records of a run directory or a metrics.jsonl file."""
    metrics = path / "metrics.jsonl" if path.is_dir() else path
    if not metrics.is_file():
        _fail(f"{path}: no metrics.jsonl there")
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "time/step" in r]
    if not steps:
        _fail(f"{metrics}: no step has time/ figures")
    return steps


def profile(steps: list[dict]) -> dict:
    phases = sorted({k[5:] for r in steps for k in r if k.startswith("time/") and k != "time/step"})
    total = sum(r["time/step"] for r in steps)
    later = steps[1:] or steps
    table = {}
    for phase in phases:
        seconds = sum(r.get(f"time/{phase}", 0.0) for r in steps)
        table[phase] = {
            "seconds": round(seconds, 2),
            "share": round(seconds / total, 4) if total else 0.0,
            "first_step_s": round(steps[0].get(f"time/{phase}", 0.0), 3),
            "mean_later_step_s": round(
                sum(r.get(f"time/{phase}", 0.0) for r in later) / len(later), 3
            ),
        }
    return {"steps": len(steps), "step_seconds": round(total, 2), "phases": table}


def print_table(name: str, figures: dict) -> None:
    print(f"{name}: {figures['steps']} steps, {figures['step_seconds']} s in steps")
    print(f"  {'phase':<12} {'seconds':>9} {'share':>7} {'first step':>11} {'later steps':>12}")
    ordered = sorted(figures["phases"].items(), key=lambda kv: -kv[1]["seconds"])
    for phase, f in ordered:
        print(
            f"  {phase:<12} {f['seconds']:>9.2f} {f['share']:>6.1%} "
            f"{f['first_step_s']:>10.3f}s {f['mean_later_step_s']:>11.3f}s"
        )


def fresh_run(experiment: Path, steps: int, extra: list[str]) -> Path:
    """A short run of `experiment` in a temporary folder; its run directory."""
    root = Path(tempfile.mkdtemp(prefix="step-profile-"))
    overrides = [
        f"train.steps={steps}",
        "eval.before=false",
        "eval.after=false",
        "eval.every=0",
        f"output.root={root}",
        *extra,
    ]
    command = [sys.executable, "-m", "uniopd", "run", str(experiment.resolve()), *overrides]
    done = subprocess.run(command, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        _fail(f"the run failed (exit {done.returncode}): {' '.join(command)}")
    (run,) = [p for p in root.iterdir() if (p / "metrics.jsonl").is_file()]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs, metrics files or YAMLs")
    parser.add_argument("--steps", type=int, default=3, help="steps of a fresh run (a YAML)")
    parser.add_argument("--set", nargs="*", default=[], help="key=value for a fresh run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    everything = {}
    for path in args.paths:
        if not path.exists():
            _fail(f"{path}: no such file or folder")
        if path.suffix in (".yaml", ".yml"):
            path = fresh_run(path, args.steps, args.set)
        figures = profile(load_steps(path))
        print_table(str(path), figures)
        everything[str(path)] = figures
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
