"""A teacher's top-K pass (the KL-family objectives' TEACHER_TOPK) over a batch of mixed lengths,
in the batch's own layout against length buckets (uniopd/engine/length_buckets.py), on the
shipped tiny-world math expert. Figures are printed, not asserted.

    python benchmarks/teacher_topk.py [--rows 128] [--k 16] [--rounds 6] [--threads 1]

Rows: prompts of 20-40 tokens and responses of 4-64 (the tiny world's early stops make many
short ones), random token ids from a fixed seed. Each round times both layouts, alternating; the
first round is a warm-up, and the median of the others is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from uniopd.builder import prebuilt
    from uniopd.engine.length_buckets import LengthBuckets
    from uniopd.engine.logprobs import response_topk
    from uniopd.engine.sequences import pack

    torch.set_num_threads(args.threads)
    shelf = prebuilt.index(prebuilt.PREBUILT)["models"]
    key = next(k for k, e in shelf.items() if e["name"] == "teacher-math")
    model = AutoModelForCausalLM.from_pretrained(prebuilt.PREBUILT / key, dtype=torch.float32)
    model.eval()
    g = torch.Generator().manual_seed(0)

    def ids(low: int, high: int) -> list[int]:
        n = int(torch.randint(low, high + 1, (1,), generator=g))
        return torch.randint(3, 200, (n,), generator=g).tolist()

    prompts = [ids(20, 40) for _ in range(args.rows)]
    responses = [ids(4, 64) for _ in range(args.rows)]
    batch = pack(prompts, responses, 0)
    buckets = LengthBuckets.of(batch)
    cells = sum(p.input_ids_N_L.numel() for p in buckets.pieces) or batch.input_ids_N_L.numel()
    print(
        f"{args.rows} rows, {batch.input_ids_N_L.numel()} cells in the batch's layout, "
        f"{cells} in {max(1, len(buckets.pieces))} bucket(s); top-{args.k}, "
        f"{args.threads} thread(s)"
    )
    runs = {
        "own layout": lambda: response_topk(model, batch, args.k),
        "length buckets": lambda: LengthBuckets.of(batch).topk(model, args.k),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for _ in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
    for name, times in seconds.items():
        kept = times[1:] or times
        print(f"{name:>15}: median {statistics.median(kept):.3f} s over {len(kept)} rounds")


if __name__ == "__main__":
    main()
