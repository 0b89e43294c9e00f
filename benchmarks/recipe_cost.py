"""What the Uni-OPD recipe adds to a training step: online balancing plus margin calibration.

    python benchmarks/recipe_cost.py                        # pure functions at tiny and paper scale
    python benchmarks/recipe_cost.py --run runs/abl-uniopd-s0   # measured share of a real run's steps

Part 1 times the pure functions on random batches shaped like the tiny world's (B=16, G=8,
T=64) and like the paper's (B=64, G=16, T=4096). Part 2 reads a run's metrics.jsonl, where the
trainer logs time/balance and time/calibrate apart from the other phases, and prints their share
of the step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from uniopd.algorithms import (
    distillation_returns,
    margin_mask,
    margin_shift,
    online_balance,
    order_consistency,
)


def _batch(B: int, G: int, T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    N = B * G
    adv = torch.randn(N, T, generator=g) * 0.3
    lengths = torch.randint(T // 4, T + 1, (N,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    correct = (torch.rand(N, generator=g) < 0.5).float()
    return adv, mask, correct, torch.arange(B).repeat_interleave(G)


def _time(fn, repeat: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pure_functions() -> None:
    print(f"pure functions (median seconds per call, CPU, {torch.get_num_threads()} threads)")
    for label, (B, G, T) in {"tiny world": (16, 8, 64), "paper scale": (64, 16, 4096)}.items():
        adv, mask, correct, groups = _batch(B, G, T)
        gen = torch.Generator().manual_seed(0)
        row = {
            "online_balance": _time(lambda: online_balance(correct, groups, 1.0, "group", gen)),
            "margin_shift": _time(lambda: margin_shift(adv, mask, correct, groups, 0.4)),
            "margin_mask": _time(lambda: margin_mask(adv, mask, correct, groups, 0.4)),
            "order_consistency": _time(
                lambda: order_consistency(distillation_returns(adv, mask), correct, groups)
            ),
        }
        print(
            f"  {label:12s} N={B * G:5d} T={T:5d}  "
            + "  ".join(f"{k} {v * 1e3:7.2f} ms" for k, v in row.items())
        )


def from_run(run: Path) -> None:
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    step = statistics.mean(m["time/step"] for m in metrics)
    parts = {
        k: statistics.mean(m.get(k, 0.0) for m in metrics)
        for k in (
            "time/balance",
            "time/calibrate",
            "time/rollout",
            "time/verify",
            "time/teacher",
            "time/update",
        )
    }
    recipe = parts["time/balance"] + parts["time/calibrate"]
    print(f"run {run} ({len(metrics)} steps): mean step {step:.3f} s")
    for k, v in parts.items():
        print(f"  {k:16s} {v * 1e3:9.2f} ms  {100 * v / step:6.2f} %")
    print(
        f"  balancing + calibration: {recipe * 1e3:.2f} ms = {100 * recipe / step:.3f} % of the step"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a run directory to read measured phase times from")
    args = ap.parse_args()
    pure_functions()
    if args.run:
        from_run(args.run)
