"""The first process stalls for SECONDS while the others wait for it in a barrier: with the
experiment's distributed_timeout_s shorter than that, they must stop with a timeout error instead
of waiting (tests/test_every_rank.py).

    accelerate launch --multi_gpu --num_processes 2 tests/dp/stall.py EXPERIMENT SECONDS

The processes join as `uniopd run` joins them (uniopd.launch.start.process_world).
"""

from __future__ import annotations

import sys
import time

from uniopd.config import load_experiment
from uniopd.launch.start import process_world


def main(experiment: str, seconds: str) -> None:
    dist = process_world(load_experiment(experiment))
    if dist.is_main:
        time.sleep(float(seconds))
    dist.barrier()
    dist.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
