"""A sweep worker process: `python -m uniopd.sweep.worker sweeps/x.yaml --storage URL`.

Started by `uniopd sweep`; also the way to add a worker on another machine by hand (give each
worker its own --index, so their samplers do not propose the same trials). Preempted (SIGTERM,
SIGUSR1), it re-queues its trial and exits with code 4 (uniopd/sweep/preempted.py)."""

import argparse
import logging
import os
import sys
import warnings

from optuna.exceptions import ExperimentalWarning

from uniopd.loop import preemption
from uniopd.sweep.run import worker

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep")
    ap.add_argument("--storage")
    ap.add_argument(
        "--index", type=int, default=0, help="worker number: gives it its own sampler seed"
    )
    ap.add_argument("--set", action="append", default=[], help="an override for every trial")
    args = ap.parse_args()
    if os.environ.get("UNIOPD_VERBOSE") != "1":  # `uniopd -v sweep` shows them
        # Optuna flags the heartbeat API it marks experimental, on every call: used on purpose
        warnings.simplefilter("ignore", ExperimentalWarning)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    with preemption.handling():  # SIGTERM / SIGUSR1: the trial under way is re-queued
        worker(args.sweep, args.storage, args.index, args.set)
        sys.exit(preemption.EXIT_PREEMPTED if preemption.requested() else 0)
