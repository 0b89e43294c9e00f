"""A sweep worker process: `python -m uniopd.sweep.worker sweeps/x.yaml --storage URL`.

Started by `uniopd sweep`; also the way to add a worker on another machine by hand."""

import argparse
import logging

from uniopd.sweep.run import worker

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep")
    ap.add_argument("--storage")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    worker(args.sweep, args.storage)
