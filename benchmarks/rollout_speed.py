"""Rollout tokens/s of the rollout engines, side by side on the same prompts and settings.

    python benchmarks/rollout_speed.py                    # the tiny world's student and prompts
    python benchmarks/rollout_speed.py --qwen3-shape      # a random Qwen3-0.6B-shaped model (GPU)
    python benchmarks/rollout_speed.py --tiny             # a CPU smoke run of the same code

The tiny world (`uniopd world build`) is sampled as a run samples it: its training prompts
through the chat template, G rollouts each, stopping at EOS. `--qwen3-shape` builds the model
from a config (nothing downloaded) with random prompts and no stop token, so every row is
`--new-tokens` long. Each engine runs once to warm up, then `--repeats` timed times; tokens/s =
response tokens / seconds, median over the repeats. Not a test: figures are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace

import torch
from gpu_step import build  # the same random Qwen3 shapes as the step benchmark
from transformers import AutoModelForCausalLM, AutoTokenizer

from uniopd.engine.rollout import ENGINES, EngineOptions, make_engine, rollout_batch
from uniopd.engine.sampling import SamplingSettings, resolve_sampling


def random_model(shape: str, device, dtype):
    """A random Qwen3-shaped model (gpu_step.py's builder) and its vocabulary size."""
    vocab = 151_936 if shape != "tiny" else 1000
    return build(shape, vocab, 0, dtype, device, "sdpa").eval(), vocab


def world_setup(a, device):
    from uniopd.data import load_source
    from uniopd.engine.sequences import encode_prompts
    from uniopd.world.paths import is_built, model_dir

    if not is_built("student"):
        raise SystemExit("the tiny world is not built: run `uniopd world build` first")
    path = model_dir("student")
    model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
    tok = AutoTokenizer.from_pretrained(path)
    rows = load_source("builtin:math/train")[: a.prompts // 2]
    rows += load_source("builtin:code/train")[: a.prompts - len(rows)]
    prompts = encode_prompts(tok, [p.prompt for p in rows])
    return model, tok, prompts, resolve_sampling(tok, model, max_new_tokens=a.new_tokens)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", nargs="+", default=["hf", "hf-paged"], choices=ENGINES.names())
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--prompt-tokens", type=int, default=256, help="--qwen3-shape / --tiny only")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-batch-rows", type=int, default=256, help="hf")
    p.add_argument("--max-batch-tokens", type=int, default=None, help="hf-paged")
    p.add_argument("--qwen3-shape", action="store_true", help="random Qwen3-0.6B-shaped model")
    p.add_argument("--tiny", action="store_true", help="tiny random model, CPU smoke run")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's)")
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if a.tiny or a.qwen3_shape:
        if a.tiny:
            a.prompts, a.group_size, a.new_tokens, a.prompt_tokens, a.repeats = 2, 2, 8, 8, 1
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        model, vocab = random_model("tiny" if a.tiny else "qwen3-0.6b", device, dtype)
        g = torch.Generator().manual_seed(0)
        prompts = [
            torch.randint(2, vocab - 2, (a.prompt_tokens,), generator=g).tolist()
            for _ in range(a.prompts)
        ]
        tok = SimpleNamespace(eos_token_id=None, pad_token_id=0)
        sampling = SamplingSettings(a.new_tokens, (), 0)
        setup = "tiny random" if a.tiny else "qwen3-0.6b-shaped random"
    else:
        model, tok, prompts, sampling = world_setup(a, device)
        setup = "tiny world student"
    options = EngineOptions(max_batch_rows=a.max_batch_rows, max_batch_tokens=a.max_batch_tokens)
    results = {}
    for name in a.engines:
        engine = make_engine(name, model, tok, options)
        figures = []
        for repeat in range(a.repeats + 1):  # the first warms up
            torch.manual_seed(repeat)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            batch, _ = rollout_batch(engine, prompts, a.group_size, sampling)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            tokens = float(batch.response_mask_N_T.sum())
            row = {"engine": name, "repeat": repeat, "tokens": tokens, "seconds": seconds}
            print(json.dumps(row), flush=True)
            if repeat:
                figures.append(tokens / seconds)
        results[name] = round(statistics.median(figures))
    summary = {
        "setup": setup,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "rollouts": len(prompts) * a.group_size,
        "new_tokens": a.new_tokens,
        "sampling": sampling.as_dict(),
        "tokens_per_s": results,
        "at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print("summary " + json.dumps(summary))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
