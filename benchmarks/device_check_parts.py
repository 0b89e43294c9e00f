"""The measurements of benchmarks/device_check.py, one function a section, and its Markdown.

Each returns a dict of plain figures with a "status". Memory is torch's own allocator count
(max_memory_allocated, what the plan's terms add up to; reserved is reported beside it): None on
a CPU, where the dry run only proves the code runs.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers
from gpu_step import EOS, PAD, build, qwen3_config
from transformers import Qwen3Config

from uniopd.config import load_experiment
from uniopd.config.method import MethodConfig
from uniopd.engine.loading import enable_activation_checkpointing
from uniopd.engine.logprobs import token_logprobs
from uniopd.engine.precision import Precision
from uniopd.engine.rollout import EngineOptions, make_engine, rollout_batch
from uniopd.engine.sampling import SamplingSettings
from uniopd.engine.sequences import SequenceBatch
from uniopd.loop.optim import make_optimizer
from uniopd.loop.scoring import TeacherSignals
from uniopd.loop.update import PolicyUpdate
from uniopd.setup.gpu_cards import GIB, card_bytes
from uniopd.setup.memory_plan import make_memory_plan, refusal
from uniopd.setup.model_shapes import SHIPPED

REPO = Path(__file__).resolve().parents[1]
PLAN_FILE = REPO / "experiments" / "paper" / "multi_teacher" / "opd.yaml"
VOCAB, TINY_VOCAB = 151_936, 1000
# dense bf16 tensor-core peaks, TFLOP/s (the vendors' SXM figures, without sparsity)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
# the plan's terms an update on a card holding only the student adds up to
UPDATE_TERMS = ("student weights", "Adam moments", "gradients", "bf16 weight cast", "activations")
UPDATE_TERMS += ("log-prob chunk buffers",)


def _device(dry: bool) -> torch.device:
    return torch.device("cpu" if dry else "cuda")


def _gib(n: float | None) -> float | None:
    return None if n is None else round(n / GIB, 2)


def machine(dry: bool) -> dict:
    info = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "gpus": torch.cuda.device_count(),
    }
    if torch.cuda.is_available() and not dry:
        props = torch.cuda.get_device_properties(0)
        info |= {"device": props.name, "memory_gib": _gib(props.total_memory)}
    else:
        info |= {"device": "cpu (dry run)" if dry else "cpu", "memory_gib": None}
    return info


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_TFLOPS.items() if k in name.upper()), None)


def model_config(shape: str, dry: bool) -> Qwen3Config:
    """The shipped config of the paper's models where there is one (what `uniopd plan` reads),
    else gpu_step.py's Qwen3 shape."""
    shipped = SHIPPED / shape / "config.json"
    if shipped.exists() and not dry:
        return Qwen3Config.from_pretrained(shipped.parent)
    return qwen3_config(shape, TINY_VOCAB if dry else VOCAB)


def _card(dry: bool) -> tuple[str, int]:
    if dry or not torch.cuda.is_available():
        return card_bytes("h100")
    props = torch.cuda.get_device_properties(0)
    return props.name, props.total_memory


def planned(config: Qwen3Config, tokens: int, checkpointing: bool, dry: bool):
    """(the experiment config, the plan) of the paper's OPD file with this student and budget."""
    with tempfile.TemporaryDirectory() as tmp:
        config.save_pretrained(tmp)
        overrides = [
            f"student.model={tmp}",
            f"train.max_tokens_per_micro_batch={tokens}",
            f"train.gradient_checkpointing={str(checkpointing).lower()}",
            "precision=bf16-mixed",
        ]
        cfg = load_experiment(PLAN_FILE, overrides)
        plan = make_memory_plan(cfg, _card(dry), 1, named={"student": Path(tmp) / "config.json"})
    return cfg, plan


def random_batch(rows: int, length: int, vocab: int, device) -> SequenceBatch:
    """`rows` full rows of `length` tokens, an eighth of them prompt, no padding."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, vocab - 2, (rows, length), generator=g)
    prompt = length // 8
    return SequenceBatch(
        ids.to(device),
        torch.ones(rows, length, dtype=torch.long, device=device),
        torch.ones(rows, length - prompt, device=device),
        prompt,
    )


def _update_parts(cfg, config: Qwen3Config, checkpointing: bool, device, dist=None):
    precision = Precision(cfg.precision, device)
    model = build("", 0, 0, precision.student_dtype, device, cfg.attn_implementation, config)
    if checkpointing:
        enable_activation_checkpointing(model)
    optimizer, _ = make_optimizer(model, cfg.train)
    objectives = MethodConfig(name="opd").objectives()
    update = PolicyUpdate(model, optimizer, objectives, cfg.train, precision=precision, dist=dist)
    return model, update


def _step(update: PolicyUpdate, batch: SequenceBatch, group_ids: torch.Tensor, device) -> float:
    n, t = batch.response_mask_N_T.shape
    g = torch.Generator().manual_seed(2)
    teacher = -torch.rand(n, t, generator=g).to(device) * 3  # any log-probs: OPD's reverse KL
    scored = TeacherSignals(["math"] * n, teacher_logp_N_T=teacher)
    zeros = torch.zeros(n, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    update(batch, scored, zeros, group_ids, torch.ones(n, dtype=torch.bool, device=device), zeros)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def update_check(shape: str, tokens: int, checkpointing: bool, dry: bool) -> dict:
    """Three bf16-mixed updates of one micro-batch of `tokens` tokens; the peak against the plan."""
    device = _device(dry)
    config = model_config(shape, dry)
    cfg, plan = planned(config, tokens, checkpointing, dry)
    terms = {t.name: t.bytes for t in plan.terms if t.name.startswith(UPDATE_TERMS)}
    predicted = sum(terms.values())
    head = {
        "tokens_per_micro_batch": tokens,
        "gradient_checkpointing": checkpointing,
        "plan_terms_gib": {k: _gib(v) for k, v in terms.items()},
        "plan_update_gib": _gib(predicted),
    }
    if predicted + GIB > plan.capacity:  # with the CUDA context: the plan refuses this card
        return head | {"status": "refused", "why": refusal(plan)}
    model, update = _update_parts(cfg, config, checkpointing, device)
    params = sum(p.numel() for p in model.parameters())
    rows = 4 if dry else 8
    batch = random_batch(rows, tokens // rows, config.vocab_size, device)
    group_ids = torch.arange(rows, device=device) // 2
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        seconds = [_step(update, batch, group_ids, device) for _ in range(3)]
    except torch.cuda.OutOfMemoryError as exc:
        return head | {"status": "failed", "error": f"out of memory: {str(exc)[:300]}"}
    cuda = device.type == "cuda"
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    reserved = torch.cuda.max_memory_reserved(device) if cuda else None
    timed = min(seconds[1:])  # the first step creates Adam's state and warms the kernels
    trained = rows * (tokens // rows) * cfg.train.epochs
    tflops = peak_tflops(machine(dry)["device"])
    out = head | {
        "status": "ok",
        "params": params,
        "peak_allocated_gib": _gib(peak),
        "peak_reserved_gib": _gib(reserved),
        "measured_over_plan": None if peak is None else round(peak / predicted, 3),
        "within_15pct": None if peak is None else abs(peak / predicted - 1) <= 0.15,
        "step_seconds": [round(s, 3) for s in seconds],
        "update_tokens_per_s": round(trained / timed),
        "update_mfu": None
        if not tflops
        else round(6 * params * trained / timed / tflops / 1e12, 4),
    }
    del model, update
    return out


def logprob_memory(tokens: int, dry: bool) -> dict:
    """Forward + backward through the output head over `tokens` tokens: the naive float32 [T, V]
    log-softmax vs uniopd's chunked pass (engine/logprobs.py), peak memory above the inputs."""
    device = _device(dry)
    vocab, hidden = (TINY_VOCAB, 64) if dry else (VOCAB, 2048)
    out: dict = {"status": "ok", "vocab": vocab, "tokens": tokens, "hidden": hidden}
    for variant in ("naive", "chunked"):
        torch.manual_seed(0)
        head = torch.nn.Linear(hidden, vocab, bias=False, device=device)
        head.weight.grad = torch.zeros_like(head.weight)  # as in training: not the pass's own
        h = (torch.randn(1, tokens, hidden, device=device) * 0.02).requires_grad_(True)
        ids = torch.randint(0, vocab, (1, tokens), device=device)
        mask = torch.ones(1, tokens, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if variant == "naive":
            logp = torch.log_softmax(head(h).float(), -1).gather(-1, ids.unsqueeze(-1))
        else:
            logp = token_logprobs(h, head, ids, mask)[0]
        logp.sum().backward()
        peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else None
        out[f"{variant}_peak_gib"] = _gib(peak)
        del head, h, logp
    return out


def rollout_speed(engine: str, new_tokens: int, rows: int, dry: bool) -> dict:
    """Sampling tokens/s of `engine` with the 0.6B shape under bf16-mixed: `rows` rows of a
    128-token prompt (an eighth in the dry run), no stop token, one warm-up pass first."""
    device = _device(dry)
    shape, vocab = ("tiny", TINY_VOCAB) if dry else ("qwen3-0.6b", VOCAB)
    precision = Precision("bf16-mixed", device)
    model = build(shape, vocab, 0, precision.student_dtype, device, "sdpa").eval()
    prompt = 16 if dry else 128
    tok = type("Tok", (), {"eos_token_id": 1 if dry else EOS, "pad_token_id": 0 if dry else PAD})
    options = EngineOptions(
        max_batch_rows=rows,
        max_batch_tokens=None if dry else 4096,
        kv_cache_tokens=rows * (prompt + new_tokens) if engine == "hf-paged" else None,
    )
    sampler = make_engine(engine, model, tok, options)
    g = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(2, vocab - 2, (prompt,), generator=g).tolist() for _ in range(rows // 2)
    ]

    def sample(n: int) -> float:
        settings = SamplingSettings(n, (), tok.pad_token_id)
        t0 = time.perf_counter()
        with precision.autocast():
            batch, _ = rollout_batch(sampler, prompts, 2, settings)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        sampled.append(int(batch.response_mask_N_T.sum()))
        return time.perf_counter() - t0

    sampled: list[int] = []
    sample(16)  # warm-up: kernels, the engine's own set-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = sample(new_tokens)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {
        "status": "ok",
        "rows": rows,
        "prompt_tokens": prompt,
        "new_tokens": new_tokens,
        "tokens": sampled[-1],
        "tokens_per_s": round(sampled[-1] / seconds, 1),
        "peak_allocated_gib": _gib(peak),
    }


def two_process_worker(result: Path, dry: bool) -> None:
    """One rank of the 2-process update: its half of the groups, uniopd's bucketed gradient sum;
    rank 0 writes whether both ranks end with the same weights."""
    from uniopd.engine.distributed import Dist

    dist = Dist.from_env(cpu=dry, timeout_s=300)
    device = dist.device(_device(dry))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    shape, tokens = ("tiny", 64) if dry else ("qwen3-0.6b", 16384)
    config = model_config(shape, dry)
    cfg, _ = planned(config, tokens, False, dry)
    _, update = _update_parts(cfg, config, False, device, dist)
    rows = 8
    whole = random_batch(rows, tokens // (rows // 2), config.vocab_size, device)
    mine = torch.arange(rows)[dist.rank * rows // 2 : (dist.rank + 1) * rows // 2]
    batch = whole.rows(mine.to(device))
    seconds = [_step(update, batch, (mine // 2).to(device), device) for _ in range(3)]
    checksum = sum(float(p.detach().double().sum()) for p in update.student.parameters())
    sums = dist.gather_objects([checksum])
    if dist.is_main:
        record = {
            "status": "ok",
            "processes": dist.world,
            "ranks_agree": len(set(sums)) == 1,
            "checksums": sums,
            "step_seconds": [round(s, 3) for s in seconds],
        }
        result.write_text(json.dumps(record))
    dist.close()


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return lines + [""]


def render_markdown(record: dict) -> str:
    m = record["machine"]
    s = record["sections"]
    lines = [
        "# Device check" + (" (dry run: tiny shapes on a CPU)" if record["dry_run"] else ""),
        "",
        f"{m['device']}, {m['gpus']} GPU(s), memory {_cell(m['memory_gib'])} GiB; torch "
        f"{m['torch']}, transformers {m['transformers']}, CUDA {m['cuda']}; "
        f"{record.get('seconds', 0)} s in all.",
        "",
    ]
    named = [dict(section=k, **v) for k, v in s.items()]
    update = [r for r in named if r["section"].startswith("update/")]
    lines += ["## Update: peak memory against the plan", ""]
    lines += _table(
        update,
        ["section", "status", "tokens_per_micro_batch", "gradient_checkpointing"]
        + ["peak_allocated_gib", "plan_update_gib", "measured_over_plan", "within_15pct"]
        + ["update_tokens_per_s", "update_mfu", "seconds"],
    )
    lines += ["## Log-prob pass, V = 151,936 (peak GiB above the inputs)", ""]
    lines += _table(
        [r for r in named if r["section"] == "logprob_memory"],
        ["status", "tokens", "hidden", "naive_peak_gib", "chunked_peak_gib"],
    )
    lines += ["## Rollout engines (0.6B shape, bf16-mixed)", ""]
    lines += _table(
        [r for r in named if r["section"].startswith("rollout/")],
        ["section", "status", "rows", "new_tokens", "tokens_per_s", "peak_allocated_gib"],
    )
    lines += ["## Two processes", ""]
    lines += _table(
        [r for r in named if r["section"] == "two_process"],
        ["status", "processes", "ranks_agree", "step_seconds"],
    )
    problems = [r for r in named if r.get("status") in ("failed", "refused", "skipped")]
    for r in problems:
        why = r.get("error") or r.get("why") or ""
        lines.append(f"- {r['section']}: {r['status']}: {why}")
    return "\n".join(lines) + "\n"
