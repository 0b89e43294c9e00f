"""Teacher scoring throughput on the CPU: the in-process teacher against the same model behind
`uniopd serve-teacher` (HTTP on 127.0.0.1), rows/s and tokens/s.

    python benchmarks/teacher_server.py                        # the tiny world's math teacher
    python benchmarks/teacher_server.py --model /models/ckpt --rows 256 --response-tokens 512
    python benchmarks/teacher_server.py --tiny                 # a random 2-layer model, seconds

Both score the same batch of random token ids (prompt and response lengths drawn per row) with
the same number of torch threads, one after the other, after one warm-up pass each; the served
scores are checked against the in-process ones. The server's own counters (forward passes per
request) are printed too. Figures are read, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from uniopd.engine import loading
from uniopd.engine.sequences import pack
from uniopd.engine.teacher_client import ServedTeacher
from uniopd.engine.teachers import TeacherPool
from uniopd.refs import resolve_model


def tiny_checkpoint(root: Path) -> str:
    """A random 2-layer Qwen2 checkpoint without a tokenizer (the server scores ids only)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )
    Qwen2ForCausalLM(config).save_pretrained(root)
    return str(root)


def random_batch(vocab: int, rows: int, prompt_tokens: int, response_tokens: int, seed: int):
    g = torch.Generator().manual_seed(seed)

    def lengths(most: int) -> list[int]:
        return torch.randint(max(1, most // 2), most + 1, (rows,), generator=g).tolist()

    prompts = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths(prompt_tokens)]
    responses = [
        torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths(response_tokens)
    ]
    return pack(prompts, responses, pad_id=0)


def start_server(model: str, threads: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "uniopd", "serve-teacher", model, "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"serve-teacher did not come up: {' '.join(cmd)}")


def interleaved(fns: dict, repeats: int) -> tuple[dict[str, float], dict]:
    """Median seconds of each fn, the fns alternating (A, B, A, B, ...) after one warm-up call
    each, so that a change in the machine's load falls on both alike; and each one's output."""
    outs = {name: fn() for name, fn in fns.items()}
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            outs[name] = fn()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in seconds.items()}, outs


def counters(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=5) as resp:
        words = resp.read().decode().split()
    return {k.split("_")[2]: int(v) for k, v in zip(words[::2], words[1::2])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="builtin:teacher-math")
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=64, help="longest prompt")
    ap.add_argument("--response-tokens", type=int, default=128, help="longest response")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes of each, alternating")
    ap.add_argument("--rows-per-request", type=int, default=8)
    ap.add_argument("--max-concurrency", type=int, default=4)
    ap.add_argument("--max-batch-tokens", type=int, default=16384)
    ap.add_argument("--micro-batch", type=int, default=32, help="in-process rows per forward")
    ap.add_argument("--tiny", action="store_true", help="a random 2-layer model, a small batch")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            model_path = tiny_checkpoint(Path(tmp))
            args.rows, args.prompt_tokens, args.response_tokens, args.repeats = 16, 16, 16, 1
        else:
            if args.model.startswith("builtin:"):
                from uniopd.launch.start import build_models

                build_models([args.model])
            model_path = resolve_model(args.model)
        model = loading.load_model(model_path, torch.device("cpu"), torch.float32, False)
        vocab = int(model.get_output_embeddings().weight.shape[0])
        batch = random_batch(vocab, args.rows, args.prompt_tokens, args.response_tokens, 0)
        domains = ["d"] * args.rows
        tokens = int(batch.attention_mask_N_L.sum())
        pool = TeacherPool({"t": model}, {"d": "t"})
        server_flags = ["--max-batch-tokens", str(args.max_batch_tokens)]
        proc, url = start_server(model_path, threads, server_flags)
        try:
            client = ServedTeacher(
                url,
                rows_per_request=args.rows_per_request,
                max_concurrency=args.max_concurrency,
            )
            client.connect()
            before = counters(url)
            median, outs = interleaved(
                {
                    "in_process": lambda: pool.logprobs(batch, domains, args.micro_batch),
                    "served": lambda: client.logprobs(batch),
                },
                args.repeats,
            )
            after = counters(url)
            local_s, served_s = median["in_process"], median["served"]
            want, got = outs["in_process"], outs["served"]
        finally:
            proc.terminate()
            proc.wait(10)
    diff = float((got - want).abs().max())
    figures = {
        "model": "random 2-layer" if args.tiny else args.model,
        "rows": args.rows,
        "tokens": tokens,
        "threads": threads,
        "in_process": {"rows_per_s": args.rows / local_s, "tokens_per_s": tokens / local_s},
        "served": {"rows_per_s": args.rows / served_s, "tokens_per_s": tokens / served_s},
        "served_over_in_process": local_s / served_s,
        "max_abs_diff": diff,
        "server_forwards": after["forwards"] - before["forwards"],
        "server_requests": after["requests"] - before["requests"],
        "failed_rows": client.failed_rows,
    }
    print(
        f"teacher scoring, {figures['model']}, {args.rows} rows, {tokens} tokens, "
        f"{threads} torch threads, median of {args.repeats} alternating passes"
    )
    for name in ("in_process", "served"):
        f = figures[name]
        print(f"  {name:11} {f['rows_per_s']:9.1f} rows/s {f['tokens_per_s']:11.0f} tokens/s")
    print(
        f"  served / in-process throughput {figures['served_over_in_process']:.2f}; "
        f"{figures['server_requests']} requests in {figures['server_forwards']} forward passes; "
        f"max |served - in-process| {diff:.2e}; failed rows {client.failed_rows}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
