"""A sweep worker process: `python -m uniopd.sweep.worker sweeps/x.yaml --storage URL`.

Started by `uniopd sweep`; also the way to add a worker on another machine by hand (give each
worker its own --index, so their samplers do not propose the same trials)."""

import argparse
import logging

from uniopd.sweep.run import worker

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep")
    ap.add_argument("--storage")
    ap.add_argument(
        "--index", type=int, default=0, help="worker number: gives it its own sampler seed"
    )
    args = ap.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    worker(args.sweep, args.storage, args.index)
