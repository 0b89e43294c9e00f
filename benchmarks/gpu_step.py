"""OPD steps at a realistic size on one GPU, phase by phase: tokens/s, peak memory, and the update
phase's model FLOPs utilisation. Nothing is downloaded: the student and the teacher are random-init
models built from Qwen3-0.6B- and Qwen3-1.7B-shaped configs.

    python benchmarks/gpu_step.py                                  # 64 x 8 rollouts, 1024 new tokens
    python benchmarks/gpu_step.py --new-tokens 2048 --steps 3 --max-tokens-per-micro-batch 65536
    python benchmarks/gpu_step.py --tiny                           # a CPU smoke run of the same code

Each step is the trainer's: rollouts through a rollout engine (`--engine`, default hf; no stop
token, so every row is full length), the teacher's sampled-token log-probs, and the policy update
(OPD advantages, PPO-clip, AdamW) under `--precision` with token-budget micro-batches. The first
step warms up and is not counted. MFU = 6 x student params x tokens trained / update seconds /
the GPU's peak dense bf16 FLOP/s (`--peak-tflops`, default 989 for H100/H200 SXM); the update
phase also holds the no-grad pass for pi_old (2 x params x tokens more), which this leaves out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace

import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from uniopd.config.method import MethodConfig
from uniopd.config.schema import TrainConfig
from uniopd.engine.loading import enable_activation_checkpointing
from uniopd.engine.precision import Precision
from uniopd.engine.rollout import ENGINES, EngineOptions, make_engine, rollout_batch
from uniopd.engine.sampling import SamplingSettings
from uniopd.engine.teachers import TeacherPool
from uniopd.loop.optim import PhaseTimer, make_optimizer
from uniopd.loop.scoring import TeacherSignals
from uniopd.loop.update import PolicyUpdate

SHAPES = {  # Qwen3 dense configs (hidden, intermediate, layers, heads, kv heads)
    "qwen3-0.6b": (1024, 3072, 28, 16, 8),
    "qwen3-1.7b": (2048, 6144, 28, 16, 8),
    "qwen3-4b": (2560, 9728, 36, 32, 8),
    "tiny": (64, 128, 2, 4, 2),
}
EOS, PAD = 151645, 151643  # Qwen3's <|im_end|> and <|endoftext|>


def qwen3_config(shape: str, vocab: int) -> Qwen3Config:
    """A Qwen3 dense config of one of SHAPES (head_dim 128 as the real models; tied embeddings)."""
    hidden, inter, layers, heads, kv = SHAPES[shape]
    return Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=max(16, hidden // heads) if shape == "tiny" else 128,
        tie_word_embeddings=True,
        max_position_embeddings=40960,
        rope_theta=1_000_000.0,
    )


def build(shape: str, vocab: int, seed: int, dtype, device, attn: str, config=None):
    """A random-init model of `shape` (or of `config`) on `device`, with no stop token."""
    config = qwen3_config(shape, vocab) if config is None else config
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    model.generation_config.eos_token_id = None  # no stop token: rows run to the stated length
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", default="qwen3-0.6b", choices=SHAPES)
    p.add_argument("--teacher", default="qwen3-1.7b", choices=SHAPES)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--new-tokens", type=int, default=1024)
    p.add_argument("--steps", type=int, default=3, help="including one warm-up step")
    p.add_argument("--precision", default="auto")
    p.add_argument("--attn", default="sdpa")
    p.add_argument("--max-tokens-per-micro-batch", type=int, default=65536)
    p.add_argument("--rollout-batch", type=int, default=256, help="rows per generate call (hf)")
    p.add_argument("--engine", default="hf", choices=ENGINES.names(), help="rollout engine")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--tiny", action="store_true", help="tiny shapes and sizes (CPU smoke run)")
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    vocab = 151_936
    if a.tiny:
        a.student = a.teacher = "tiny"
        a.prompts, a.group_size, a.prompt_tokens, a.new_tokens = 4, 2, 8, 8
        a.steps, a.max_tokens_per_micro_batch, vocab = 2, 64, 1000
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = Precision(a.precision, device)
    student = build(a.student, vocab, 0, precision.student_dtype, device, a.attn)
    teacher = build(a.teacher, vocab, 1, precision.teacher_dtype, device, a.attn).eval()
    teacher.requires_grad_(False)
    if a.gradient_checkpointing:
        enable_activation_checkpointing(student)
    n_params = sum(p.numel() for p in student.parameters())
    train = TrainConfig(
        lr=1e-6,
        warmup_steps=0,
        max_tokens_per_micro_batch=a.max_tokens_per_micro_batch,
        gradient_checkpointing=a.gradient_checkpointing,
    )
    objectives = MethodConfig(name="opd").objectives()
    optimizer, _ = make_optimizer(student, train)
    update = PolicyUpdate(student, optimizer, objectives, train, precision=precision)
    tok = SimpleNamespace(
        eos_token_id=EOS if not a.tiny else 1, pad_token_id=PAD if not a.tiny else 0
    )
    # no stop token: every row runs to max_new_tokens, the stated length, measured
    sampling = SamplingSettings(a.new_tokens, (), tok.pad_token_id)
    engine = make_engine(a.engine, student, tok, EngineOptions(max_batch_rows=a.rollout_batch))
    pool = TeacherPool({"teacher": teacher}, {"math": "teacher"})
    g = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(2, vocab - 2, (a.prompt_tokens,), generator=g).tolist()
        for _ in range(a.prompts)
    ]
    n = a.prompts * a.group_size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rows = []
    for step in range(a.steps):
        timer = PhaseTimer(device)
        with timer("rollout"), precision.autocast():
            batch, _ = rollout_batch(engine, prompts, a.group_size, sampling)
            batch = batch.to(device)
        engine.sleep()
        domains = ["math"] * n
        with timer("teacher"), precision.autocast():
            logp = pool.logprobs(batch, domains, 0, None, max_tokens=a.max_tokens_per_micro_batch)
        scored = TeacherSignals(domains, teacher_logp_N_T=logp)
        group_ids = torch.arange(a.prompts, device=device).repeat_interleave(a.group_size)
        with timer("update"):
            update(
                batch,
                scored,
                torch.zeros(n, device=device),
                group_ids,
                torch.ones(n, dtype=torch.bool, device=device),
                torch.zeros(n, device=device),
            )
            engine.update_weights(student)
        engine.wake()
        response = float(batch.response_mask_N_T.sum())
        cells = float(batch.attention_mask_N_L.sum())  # real tokens, prompt + response
        s = timer.seconds
        row = {
            "step": step,
            "seconds": {k: round(v, 3) for k, v in s.items()},
            "rollout_tokens_per_s": response / s["rollout"],
            "teacher_tokens_per_s": cells / s["teacher"],
            "update_tokens_per_s": cells / s["update"],
            "update_mfu": 6 * n_params * cells / s["update"] / (a.peak_tflops * 1e12),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    counted = rows[1:] or rows

    def med(key: str) -> float:
        return statistics.median(r[key] for r in counted)

    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    summary = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "engine": a.engine,
        "student": a.student,
        "student_params": n_params,
        "teacher": a.teacher,
        "precision": precision.mode,
        "rollouts": n,
        "prompt_tokens": a.prompt_tokens,
        "new_tokens": a.new_tokens,
        "rollout_tokens_per_s": round(med("rollout_tokens_per_s")),
        "teacher_tokens_per_s": round(med("teacher_tokens_per_s")),
        "update_tokens_per_s": round(med("update_tokens_per_s")),
        "update_mfu": round(med("update_mfu"), 4),
        "peak_gpu_memory_gib": None if peak is None else round(peak, 2),
        "at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print("summary " + json.dumps(summary))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "steps": rows}, f, indent=1)


if __name__ == "__main__":
    main()
