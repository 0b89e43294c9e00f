"""Peak memory of the log-prob pass over a Qwen3-sized vocabulary: chunked vs naive.

    python benchmarks/logprob_memory.py                    # V = 151,936, T = 4096, H = 1024, chunk 512
    python benchmarks/logprob_memory.py --tokens 1024 --chunk 256

The pass is what every update does to a response row: final hidden states [T, H] -> output head
-> log-prob of each sampled token -> backward. Naive builds the float32 [T, V] logits and their
log-softmax at once; chunked (uniopd.engine.logprobs.token_logprobs) runs the head and the
log-softmax over `--chunk` tokens at a time and recomputes each chunk in the backward pass. Both
are measured for the student (with backward; the head's weight gradient is allocated beforehand,
as in training, so it is not counted) and for a teacher (no grad). Each variant runs in a fresh
process on the CPU; its peak is the process's peak resident memory above what the inputs took.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# large blocks straight from mmap and back on free: without it glibc keeps freed chunks mapped
# (its dynamic threshold), and resident memory stops following what is alive
ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> None:
    """Start the peak (VmHWM) afresh: set-up transients (weight init) are not the pass's."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def one(variant: str, vocab: int, tokens: int, hidden: int, chunk: int, grad: bool) -> dict:
    import torch

    from uniopd.engine.logprobs import token_logprobs

    torch.manual_seed(0)
    head = torch.nn.Linear(hidden, vocab, bias=False).requires_grad_(grad)
    h = (torch.randn(1, tokens, hidden) * 0.02).requires_grad_(grad)
    ids = torch.randint(0, vocab, (1, tokens))
    mask = torch.ones(1, tokens)
    if grad:  # the head's weight gradient exists in both variants: not the pass's own cost
        head.weight.grad = torch.zeros_like(head.weight)
    with torch.set_grad_enabled(grad):  # warm-up: lazy imports and allocator set-up, not counted
        small, _, _, _ = token_logprobs(h[:, :2], head, ids[:, :2], mask[:, :2], chunk)
        if grad:
            small.sum().backward()
            head.weight.grad.zero_()
    base = _rss_mb()
    _reset_peak()
    start = time.perf_counter()
    with torch.set_grad_enabled(grad):
        if variant == "naive":
            logp = torch.log_softmax(head(h).float(), -1).gather(-1, ids[..., None]).squeeze(-1)
        else:
            logp, _, _, _ = token_logprobs(h, head, ids, mask, chunk)
        if grad:
            (-logp.mean()).backward()
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    return {"variant": variant, "peak_mb": round(peak - base, 1), "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # one measurement, in a child
    parser.add_argument("--no-grad", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        grad = not args.no_grad
        print(json.dumps(one(args.variant, args.vocab, args.tokens, args.hidden, args.chunk, grad)))
        return
    shape = ["--vocab", str(args.vocab), "--tokens", str(args.tokens), "--hidden", str(args.hidden)]
    logits_mb = args.tokens * args.vocab * 4 / 2**20
    print(
        f"log-prob pass, V = {args.vocab:,}, T = {args.tokens}, H = {args.hidden}, "
        f"chunk = {args.chunk} (one float32 [T, V] = {logits_mb:,.0f} MB):"
    )
    for mode, flags in (("student, with backward", []), ("teacher, no grad", ["--no-grad"])):
        results = {}
        for variant in ("naive", "chunked"):
            command = [sys.executable, __file__, "--variant", variant, "--chunk", str(args.chunk)]
            out = subprocess.run(
                command + shape + flags, capture_output=True, text=True, check=True, env=ENV
            ).stdout
            results[variant] = json.loads(out.strip().splitlines()[-1])
        ratio = results["naive"]["peak_mb"] / max(results["chunked"]["peak_mb"], 1.0)
        print(f"  {mode}: naive / chunked peak memory {ratio:.1f}x")
        for r in results.values():
            mb, s = r["peak_mb"], r["seconds"]
            print(f"    {r['variant']:8s} peak {mb:>8,.0f} MB above the inputs, {s} s")


if __name__ == "__main__":
    main()
