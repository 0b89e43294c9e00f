"""The policy update's achieved FLOP rate next to a plain matmul's, same machine, same threads.

    python benchmarks/update_flops.py                       # the quickstart's update, 3 repeats
    python benchmarks/update_flops.py --rows 128 --prompt 40 --response 64 --repeats 5
    python benchmarks/update_flops.py --threads 1 --json out.json
    python benchmarks/update_flops.py --bucket-cost 1000000000   # one bucket: the batch's layout
    python benchmarks/update_flops.py --kernels              # and where an update's time goes

The update is `PolicyUpdate` as the loop builds it from experiments/quickstart.yaml (OPD, 4 PPO
epochs, the tiny world's student, AdamW), on a batch of the quickstart's shape: `rows` rollouts,
prompts of 60-100% of `prompt` tokens (left-padded), responses of 25-100% of `response` tokens
(right-padded), random token ids and teacher log-probs. The teacher and the rollout are not in
it: this is the `update` phase of metrics.jsonl alone.

FLOPs are counted for the work a perfect implementation would do and no more: every real token
(padding excluded) through every linear layer (2 FLOPs a weight forward, 4 backward) and its
attention scores and values (causal: half the square), the output head over response tokens
only, forward + backward per epoch, and pi_old's forward only when the update runs it as a pass
of its own (counted with a hook: with one micro-batch, pi_old is the first epoch's forward). The
cells the student's passes really ran are counted too (`forward_cells`, per update): the update
runs its passes in length buckets (uniopd/engine/length_buckets.py); `--bucket-cost` sets a
bucket's fixed cost in cells (a huge one keeps the batch's own layout). The update's rate is
those FLOPs over its wall time; the matmul's is a plain `a @ b` at (a) 1024^3 (`--matmul`) and
(b) the model's widest shape, [batch tokens, hidden] x [hidden, intermediate]. Ratios near 1
mean the update runs at what
the machine can do; far below, Python, padding, tiny kernels or repeated work cost more than the
model. Figures are read, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from uniopd.config import load_experiment
from uniopd.engine import length_buckets
from uniopd.engine.loading import load_model
from uniopd.engine.sequences import SequenceBatch
from uniopd.loop.optim import make_optimizer
from uniopd.loop.scoring import TeacherSignals
from uniopd.loop.update import PolicyUpdate
from uniopd.refs import resolve_model

QUICKSTART = Path(__file__).resolve().parent.parent / "experiments" / "quickstart.yaml"


def synthetic_batch(rows: int, prompt: int, response: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    p_len = torch.randint(max(1, int(0.6 * prompt)), prompt + 1, (rows,), generator=g)
    t_len = torch.randint(max(1, int(0.25 * response)), response + 1, (rows,), generator=g)
    ids = torch.randint(3, vocab, (rows, prompt + response), generator=g)
    attn = torch.zeros(rows, prompt + response, dtype=torch.long)
    mask = torch.zeros(rows, response)
    for i in range(rows):
        attn[i, prompt - int(p_len[i]) : prompt + int(t_len[i])] = 1
        mask[i, : int(t_len[i])] = 1
    ids = ids * attn  # padding is token 0
    return SequenceBatch(ids, attn, mask, prompt), p_len, t_len


def model_flops(
    config, p_len: torch.Tensor, t_len: torch.Tensor, epochs: int, pi_old_pass: bool = True
) -> float:
    """FLOPs of `epochs` forward-and-backward passes over the real tokens, plus pi_old's forward
    when it is a pass of its own."""
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = d // config.num_attention_heads * config.num_key_value_heads
    per_token_layer = 2 * (d * d + 2 * d * kv + d * d + 3 * d * ff)  # q, k, v, o, gate/up/down
    lengths = (p_len + t_len).double()
    tokens = float(lengths.sum())
    # causal attention: QK^T and AV over the half square, 2 FLOPs a multiply-add, per layer
    attention = float((2 * 2 * d * lengths * lengths / 2).sum()) * layers
    head = 2 * d * config.vocab_size * float(t_len.sum())
    forward = per_token_layer * layers * tokens + attention + head
    return pi_old_pass * forward + epochs * 3 * forward  # backward is twice the forward


def matmul_rate(m: int, k: int, n: int, repeats: int = 10) -> float:
    """FLOP/s of a plain fp32 `a @ b`, [m, k] x [k, n], the best of `repeats`."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b  # warm-up: threads, caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best


MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm"}


def kernel_shares(one_update) -> dict:
    """Where one update's time goes, by the profiler's self time of torch's operators: matrix
    products, the attention kernel, and everything else (elementwise, reductions, copies)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        one_update()
    seconds = {"matmul": 0.0, "attention": 0.0, "other operators": 0.0}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        kind = (
            "matmul"
            if event.key in MATMUL_OPS
            else "attention"
            if "scaled_dot_product" in event.key
            else "other operators"
        )
        seconds[kind] += event.self_cpu_time_total / 1e6
    return {k: round(v, 4) for k, v in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=128, help="rollouts (16 prompts x 8)")
    parser.add_argument("--prompt", type=int, default=40, help="prompt width, tokens")
    parser.add_argument("--response", type=int, default=64, help="max_new_tokens")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as set up)")
    parser.add_argument("--matmul", type=int, default=1024, help="side of the square matmul")
    parser.add_argument("--set", nargs="*", default=[], help="experiment overrides, key=value")
    parser.add_argument(
        "--bucket-cost",
        type=int,
        default=length_buckets.BUCKET_COST_CELLS,
        help="a length bucket's fixed cost in cells (huge: one bucket, the batch's own layout)",
    )
    parser.add_argument(
        "--kernels",
        action="store_true",
        help="also profile one update: seconds in matrix products, attention and other operators, "
        "and the ratio the update would reach if only its matrix products took time",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    length_buckets.BUCKET_COST_CELLS = args.bucket_cost

    cfg = load_experiment(QUICKSTART, ["tracking.wandb=disabled", *args.set])
    if cfg.student.model.startswith("builtin:"):  # copied from the package (or built) on first use
        from uniopd.builder.build import build_missing

        cfg.world.select()
        build_missing([cfg.student.model.removeprefix("builtin:")])
    student = load_model(resolve_model(cfg.student.model), torch.device("cpu"), torch.float32, True)
    optimizer, _ = make_optimizer(student, cfg.train)
    update = PolicyUpdate(student, optimizer, cfg.method.objectives(), cfg.train)
    batch, p_len, t_len = synthetic_batch(
        args.rows, args.prompt, args.response, student.config.vocab_size
    )
    n = args.rows
    teacher = -torch.rand(n, args.response) * batch.response_mask_N_T
    scored = TeacherSignals(["math"] * n, teacher_logp_N_T=teacher)
    group = torch.arange(n) // cfg.rollout.group_size

    def one_update() -> float:
        start = time.perf_counter()
        update(
            batch, scored, torch.zeros(n), group, torch.ones(n, dtype=torch.bool), torch.zeros(n)
        )
        return time.perf_counter() - start

    passes = []  # the student's forward passes in one update: (cells, with gradients)
    hook = student.register_forward_pre_hook(
        lambda _, args, kwargs: passes.append(
            (kwargs["input_ids"].numel(), torch.is_grad_enabled())
        ),
        with_kwargs=True,
    )
    one_update()  # warm-up: the allocator's sizes, lazy inits
    hook.remove()
    seconds = [one_update() for _ in range(args.repeats)]
    pi_old_pass = any(not grad for _, grad in passes)  # (its own pass is the one without grad)
    flops = model_flops(student.config, p_len, t_len, cfg.train.epochs, pi_old_pass)
    rate = flops / statistics.median(seconds)
    c = student.config
    square = matmul_rate(args.matmul, args.matmul, args.matmul)
    shaped = matmul_rate(int((p_len + t_len).sum()), c.hidden_size, c.intermediate_size)
    figures = {
        "threads": torch.get_num_threads(),
        "rows": n,
        "real_tokens": int((p_len + t_len).sum()),
        "padded_cells": int(batch.input_ids_N_L.numel()),
        "forward_passes": len(passes),
        "forward_cells": sum(c for c, _ in passes),
        "bucket_cost": args.bucket_cost,
        "epochs": cfg.train.epochs,
        "pi_old_pass": pi_old_pass,
        "update_seconds": [round(s, 3) for s in seconds],
        "model_gflop": round(flops / 1e9, 2),
        "update_gflop_per_s": round(rate / 1e9, 2),
        "matmul_square": args.matmul,
        "matmul_square_gflop_per_s": round(square / 1e9, 2),
        "matmul_model_shape_gflop_per_s": round(shaped / 1e9, 2),
        "update_vs_matmul_square": round(rate / square, 3),
        "update_vs_matmul_model_shape": round(rate / shaped, 3),
    }
    if args.kernels:
        kernels = kernel_shares(one_update)
        figures["kernel_seconds"] = kernels
        # the update's FLOPs (nearly all of them matrix products) over the products' time alone:
        # the ceiling of the ratio while the other operators run as separate kernels
        figures["ceiling_vs_matmul_square_if_only_matmuls_took_time"] = round(
            flops / kernels["matmul"] / square, 3
        )
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
