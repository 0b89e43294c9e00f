"""What each objective costs per training step on the tiny world, phase by phase, measured alone.

    python benchmarks/objective_cost.py                      # every file of experiments/objectives
    python benchmarks/objective_cost.py --steps 5 --files experiments/objectives/jsd.yaml

Each experiment file runs for a few steps (the quickstart's batch: 16 prompts x 8 rollouts, 4 PPO
epochs) with no evaluation, one at a time, and the median seconds of its steps' phases from
metrics.jsonl are printed: rollout, verify, teacher (the teacher phase: sampled-token, top-K or
reference log-probs), update (which holds the full-vocabulary teacher passes of JSD-type losses,
one per micro-batch and epoch). The first step is left out (warm-up). Run it on an idle machine:
the group runs behind docs/results.md shared the CPU with other work, so their seconds per step
are only indicative.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from uniopd.config import load_experiment
from uniopd.launch.start import start_run

PHASES = ("rollout", "verify", "teacher", "balance", "update", "calibrate", "step")


def measure(path: Path, steps: int, root: Path) -> dict[str, float]:
    cfg = load_experiment(
        path,
        [
            f"train.steps={steps}",
            "data.eval=[]",
            f"output.root={root}",
            "output.progress=false",
            "output.log_rollouts_every=0",
            "tracking.wandb=disabled",
            # the difficulty estimate is a one-off per run, not a per-step cost
            "balance.offline.mode=none",
        ],
    )
    run, _ = start_run(cfg)
    rows = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()][1:]
    return {
        p: statistics.median(r[f"time/{p}"] for r in rows)
        for p in PHASES
        if all(f"time/{p}" in r for r in rows)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--files", nargs="*", default=sorted(Path("experiments/objectives").glob("*.yaml"))
    )
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print(
        f"seconds per step (median of steps 2..{args.steps}), CPU, {torch.get_num_threads()} threads"
    )
    print(f"{'experiment':28}" + "".join(f"{p:>10}" for p in PHASES))
    with tempfile.TemporaryDirectory() as tmp:
        for path in map(Path, args.files):
            t = measure(path, args.steps, Path(tmp))
            print(
                f"{path.stem:28}"
                + "".join(f"{t[p]:10.2f}" if p in t else f"{'-':>10}" for p in PHASES)
            )


if __name__ == "__main__":
    main()
