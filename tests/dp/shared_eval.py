"""Offline difficulty estimation and the step-0 held-out evaluation of an experiment, in however
many processes launched this script (tests/test_every_rank.py compares 1 and 2).

    python tests/dp/shared_eval.py EXPERIMENT TIMEOUT_S SECONDS_PER_ROW                # one
    accelerate launch --multi_gpu --num_processes 2 tests/dp/shared_eval.py ...        # two

The processes join as `uniopd run` joins them, with every collective bounded by TIMEOUT_S (what
a run's distributed_timeout_s sets: tests/dp/stall.py), and go through the runner (offline
balancing) and the trainer's `evaluate`, as a run's start does. The first process makes the run
directory <output.root>/<name>; it alone writes the difficulty table and the evaluation.

SECONDS_PER_ROW: each generate call of the `hf` engine first sleeps that long per row it was
given. On a GPU a row of 16k new tokens takes minutes; the tiny test model answers in
milliseconds, and a sleep makes the time a process spends sampling its rows the same on a loaded
CPU as on an idle one. The sampling itself stays the engine's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from uniopd.config import load_experiment
from uniopd.engine.distributed import Dist
from uniopd.engine.rollout.hf import HFEngine
from uniopd.launch.start import create_run
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan


def slow_generation(seconds_per_row: float) -> None:
    real = HFEngine.generate

    def generate(self, prompt_ids, sampling, vision=None):
        time.sleep(seconds_per_row * len(prompt_ids))
        return real(self, prompt_ids, sampling, vision)

    HFEngine.generate = generate  # type: ignore[method-assign]


def main(experiment: str, timeout_s: str, seconds_per_row: str) -> None:
    cfg = load_experiment(experiment)
    dist = Dist.from_env(cpu=True, timeout_s=float(timeout_s))
    slow_generation(float(seconds_per_row))
    plan = make_plan(cfg)
    path = dist.broadcast_object(str(create_run(cfg, plan).path) if dist.is_main else None)
    trainer = prepare(plan, RunDir(Path(path)), dist=dist)  # offline balancing included
    trainer.evaluate()
    dist.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
