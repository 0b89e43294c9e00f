"""The per-GPU memory of a run, before any weight loads: pure arithmetic on the experiment config
and each model's shape (model_shapes.py). `uniopd plan` prints it; `uniopd validate` refuses a
file that targets a GPU it cannot fit.

A process holds, all run long: the student's weights (float32 master copy under fp32 and the
mixed precisions, bfloat16 under bf16-pure), Adam's two moments of every trainable parameter,
and the teachers placed on its GPU (their compute dtype, no optimizer). Then two phases take
turns, and the peak is the larger:

- sampling: the rollout engine. hf-paged samples with a bfloat16 copy of the weights under
  bf16-mixed (engine/rollout/hf_paged.py, `sampling_weights`) and a paged KV cache, either
  `rollout.kv_cache_tokens` or `kv_cache_memory_fraction` of what is free (transformers' own
  sizing: it fills that share, so it fits by construction if one row does); hf keeps a padded
  KV cache of max_batch_rows x (prompt + response); vLLM takes gpu_memory_utilization of the
  card (it sleeps during the update).
- update: gradients (float32 on the master weights; freed between steps, zero_grad
  set_to_none), autocast's bfloat16 cast of every trainable weight (cached for the forward),
  layer activations at the micro-batch token budget (with gradient checkpointing: each layer's
  input plus one layer recomputed), the chunked head + log-softmax buffers (engine/logprobs.py:
  logprob_chunk_tokens x V in float32: logits, log-probs, their gradient), and one gradient
  bucket being all-reduced (engine/distributed.py, GRAD_BUCKET_BYTES).

FSDP (train.fsdp) divides the student's terms by the processes, plus two gathered layers in
flight. Estimates: allocator fragmentation and library workspaces come on top (the CUDA context
term is a round 1 GiB for them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from uniopd.config import ExperimentConfig
from uniopd.engine.distributed import GRAD_BUCKET_BYTES
from uniopd.refs import parse_teacher
from uniopd.setup.gpu_cards import GIB
from uniopd.setup.model_shapes import ModelShape, model_shape
from uniopd.setup.plan_images import PlanError
from uniopd.setup.teacher_devices import device_name, form_for

CONTEXT_BYTES = GIB  # CUDA context, cuBLAS/NCCL workspaces, allocator slack
PAGED_FRACTION = 0.9  # transformers' max_memory_percent when kv_cache_memory_fraction is unset
PROMPT_GUESS = 1024  # prompt tokens assumed where data.max_prompt_tokens is unset


@dataclasses.dataclass(frozen=True)
class Term:
    name: str
    phase: str  # resident | sampling | update
    bytes: int
    fixes: tuple[str, ...] = ()  # what to change to shrink it


@dataclasses.dataclass
class MemoryPlan:
    terms: list[Term]
    gpu: str
    capacity: int
    notes: list[str]

    def phase(self, name: str) -> int:
        return sum(t.bytes for t in self.terms if t.phase == name)

    @property
    def peak(self) -> int:
        return self.phase("resident") + max(self.phase("sampling"), self.phase("update"))

    @property
    def fits(self) -> bool:
        return self.peak <= self.capacity and not any(n.startswith("no room") for n in self.notes)


@dataclasses.dataclass(frozen=True)
class Bytes:
    """Bytes per parameter or element under a precision."""

    weight: int
    grad: int
    adam: int
    compute: int
    teacher: int
    cast: int  # autocast's cached half-precision copy of a trainable weight


PRECISIONS = {
    "fp32": Bytes(4, 4, 8, 4, 4, 0),
    "bf16-mixed": Bytes(4, 4, 8, 2, 2, 2),
    "fp16-mixed": Bytes(4, 4, 8, 2, 2, 2),
    "bf16-pure": Bytes(2, 2, 4, 2, 2, 0),
}


def lora_params(shape: ModelShape, r: int, targets: list[str]) -> int:
    """Adapter parameters: r x (in + out) for every targeted projection of every layer."""
    shapes = shape.linear_shapes()
    return shape.layers * sum(
        r * sum(shapes[t.split(".")[-1]]) for t in targets if t.split(".")[-1] in shapes
    )


def activation_bytes_per_token(shape: ModelShape, compute: int, checkpointing: bool) -> int:
    """Activations a backward pass needs, per token of a micro-batch: per layer the norms'
    inputs, q/k/v (before and after the q/k norm and rotary), the attention output and the
    gated MLP's four intermediate tensors (the attention kernel itself keeps O(T), not T^2).
    With checkpointing only each layer's input is kept, and one layer is live at a time."""
    h, hd = shape.hidden, shape.head_dim
    qkv = (shape.heads + 2 * shape.kv_heads) * hd
    layer = (6 * h + 2 * qkv + 2 * shape.heads * hd + 4 * shape.intermediate) * compute
    kept = shape.layers * h * compute + layer if checkpointing else shape.layers * layer
    return kept + 4 * h  # the float32 final hidden state the chunked head reads


def micro_batch_tokens(cfg: ExperimentConfig, processes: int) -> int:
    if cfg.train.max_tokens_per_micro_batch:
        return cfg.train.max_tokens_per_micro_batch
    rows = max(1, cfg.rollout.prompts_per_batch * cfg.rollout.group_size // processes)
    rows = min(rows, cfg.train.micro_batch_size or rows)
    return rows * row_tokens(cfg)


def row_tokens(cfg: ExperimentConfig) -> int:
    return (cfg.data.max_prompt_tokens or PROMPT_GUESS) + cfg.rollout.max_new_tokens


def precision_on_gpu(cfg: ExperimentConfig) -> str:
    return "bf16-mixed" if cfg.precision == "auto" else cfg.precision


def _student_terms(cfg: ExperimentConfig, s: ModelShape, b: Bytes, shard: int) -> list[Term]:
    lora = cfg.student.lora
    trainable = lora_params(s, lora.r, lora.target_modules) if lora else s.params
    fsdp: tuple[str, ...] = ()
    if shard == 1:
        fsdp = ("train.fsdp: true with --nproc N (the student's terms / N; rollout.engine: hf)",)
    adapter = ("student.lora: an adapter (gradients and Adam state for it only)",)
    whole = fsdp if lora else fsdp + adapter
    terms = [
        Term("student weights", "resident", s.params * b.weight // shard, fsdp),
        Term("Adam moments", "resident", trainable * b.adam // shard, whole),
        Term("gradients", "update", trainable * b.grad // shard, whole),
    ]
    if b.cast:
        terms.append(
            Term("bf16 weight cast (autocast)", "update", trainable * b.cast // shard, whole)
        )
    if shard > 1:  # two layers gathered at a time: the one computing and the next, prefetched
        layer = (s.params - s.vocab * s.hidden) // s.layers
        terms.append(Term("FSDP gathered layers", "update", 2 * layer * b.compute))
    return terms


def _update_terms(cfg: ExperimentConfig, s: ModelShape, b: Bytes, processes: int) -> list[Term]:
    t = cfg.train
    tokens = micro_batch_tokens(cfg, processes)
    per_token = activation_bytes_per_token(s, b.compute, t.gradient_checkpointing)
    smaller: tuple[str, ...] = (
        f"train.max_tokens_per_micro_batch smaller (now {tokens} tokens per micro-batch)",
    )
    if not t.gradient_checkpointing:
        smaller = ("train.gradient_checkpointing: true",) + smaller
    terms = [
        Term(f"activations ({tokens} tokens)", "update", tokens * per_token, smaller),
        Term("log-prob chunk buffers", "update", 3 * t.logprob_chunk_tokens * s.vocab * 4),
    ]
    if processes > 1 and not t.fsdp:
        terms.append(Term("gradient all-reduce bucket", "update", GRAD_BUCKET_BYTES))
    return terms


def _teacher_terms(cfg: ExperimentConfig, shapes: dict[str, ModelShape], b: Bytes) -> list[Term]:
    """Each distinct teacher placed on this process's GPU (local rank 0's placement): served
    teachers and ones on the CPU or other GPUs cost this GPU nothing."""
    out: list[Term] = []
    seen: set[str] = set()
    if not cfg.method.needs_teacher():  # GRPO: no teacher is asked, so none is loaded
        return out
    for domain, text in cfg.teachers.items():
        ref = parse_teacher(text)
        form = form_for(cfg.teacher_device, domain)
        device = device_name(form, 0) if form is not None else "cuda:0"
        if ref.is_server or ref.model in seen or device not in ("cuda:0", "cuda"):
            continue
        seen.add(ref.model)
        fix = (
            f"serve teacher {domain} (teachers.{domain}: http://host:port/v1, uniopd serve-teacher)",
            "teacher_device: cuda:{local_rank+N} (the teachers on GPUs of their own)",
        )
        out.append(Term(f"teacher {ref.model}", "resident", shapes[domain].params * b.teacher, fix))
    return out


def _sampling_terms(
    cfg: ExperimentConfig, s: ModelShape, b: Bytes, resident: int, capacity: int, processes: int
) -> tuple[list[Term], list[str]]:
    r = cfg.rollout
    kv = s.kv_bytes_per_token(b.compute)
    one_row = row_tokens(cfg) * kv
    if r.engine == "vllm":
        share = int(r.gpu_memory_utilization * capacity)
        return [
            Term(
                "vLLM weights + KV cache",
                "sampling",
                share,
                ("rollout.gpu_memory_utilization smaller",),
            )
        ], []
    if r.engine == "hf":
        rows = min(r.max_batch_rows, max(1, r.prompts_per_batch * r.group_size // processes))
        fix = (f"rollout.max_batch_rows smaller (now {rows} rows)",)
        return [Term(f"hf KV cache ({rows} rows)", "sampling", rows * one_row, fix)], []
    copy = [Term("bf16 rollout copy", "sampling", s.params * b.cast)] if b.cast else []
    copy_bytes = sum(t.bytes for t in copy)
    if r.kv_cache_tokens is not None:
        per_forward = r.max_batch_tokens or 8192  # transformers' default on a GPU
        mask = per_forward * (r.kv_cache_tokens + per_forward) * b.compute
        fix = (f"rollout.kv_cache_tokens smaller (now {r.kv_cache_tokens})",)
        cache = Term(
            f"paged KV cache ({r.kv_cache_tokens} tokens)", "sampling", r.kv_cache_tokens * kv, fix
        )
        return [*copy, cache, Term("attention mask per forward", "sampling", mask)], []
    fraction = r.kv_cache_memory_fraction or PAGED_FRACTION
    free = max(0, capacity - resident - copy_bytes)
    cache_bytes = int(fraction * free)
    notes = [
        f"paged KV cache: {fraction:g} of the {free / GIB:.1f} GiB free when sampling starts = "
        f"{cache_bytes // kv} tokens ({kv // 1024} KiB a token)"
    ]
    if cache_bytes < one_row:
        notes.append(
            f"no room for the KV cache of one row ({row_tokens(cfg)} tokens, {one_row / GIB:.1f} GiB)"
        )
    cache = Term("paged KV cache (sized to fit)", "sampling", cache_bytes)
    return [*copy, cache], notes


def model_shapes(cfg: ExperimentConfig, named: dict[str, Path]) -> dict[str, ModelShape]:
    """'student' and each domain with a teacher loaded in-process -> its shape (`named`: the
    config.json files given by role, which win over everything else)."""
    student = model_shape(cfg.student.model, "student", named.get("student"))
    shapes = {"student": student}
    for domain, text in cfg.teachers.items():
        ref = parse_teacher(text)
        if ref.is_self:  # the student's initial weights (or their average): the student's shape
            shapes[domain] = student
        elif not ref.is_server:
            shapes[domain] = model_shape(ref.model, f"teachers.{domain}", named.get(domain))
    return shapes


def make_memory_plan(
    cfg: ExperimentConfig,
    gpu: tuple[str, int],
    processes: int = 1,
    named: dict[str, Path] | None = None,
) -> MemoryPlan:
    """The per-GPU terms of `cfg` on a `gpu` of (name, bytes), with `processes` processes."""
    shapes = model_shapes(cfg, named or {})
    s, b = shapes["student"], PRECISIONS[precision_on_gpu(cfg)]
    shard = processes if cfg.train.fsdp and processes > 1 else 1
    terms = [Term("CUDA context and workspaces", "resident", CONTEXT_BYTES)]
    terms += _student_terms(cfg, s, b, shard) + _teacher_terms(cfg, shapes, b)
    resident = sum(t.bytes for t in terms if t.phase == "resident")
    sampling, notes = _sampling_terms(cfg, s, b, resident, gpu[1], processes)
    terms += sampling + _update_terms(cfg, s, b, processes)
    if cfg.data.max_prompt_tokens is None:
        notes.append(f"prompts taken as {PROMPT_GUESS} tokens (data.max_prompt_tokens is unset)")
    notes.insert(
        0,
        f"student {s.params / 1e6:,.1f}M parameters ({s.source}); "
        f"{precision_on_gpu(cfg)}; {processes} process(es)" + (", FSDP" if shard > 1 else ""),
    )
    plan = MemoryPlan(terms, gpu[0], gpu[1], notes)
    if plan.fits and plan.peak > 0.95 * plan.capacity:  # fragmentation is not in the terms
        notes.append(f"within {(plan.capacity - plan.peak) / GIB:.1f} GiB of the card: tight")
    return plan


def render(plan: MemoryPlan) -> str:
    """The table: every term by phase, the phases' sums and the peak against the card."""
    lines = [f"{'term':44} {'phase':9} {'GiB':>7}"]
    for t in plan.terms:
        lines.append(f"{t.name[:44]:44} {t.phase:9} {t.bytes / GIB:7.2f}")
    for phase in ("resident", "sampling", "update"):
        lines.append(f"{'= ' + phase:44} {'':9} {plan.phase(phase) / GIB:7.2f}")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(
        f"peak per GPU: {plan.peak / GIB:.2f} GiB of {plan.capacity / GIB:.0f} GiB "
        f"({plan.gpu}): {verdict}"
    )
    return "\n".join(lines + [f"note: {n}" for n in plan.notes])


def refusal(plan: MemoryPlan) -> str:
    """Why the plan does not fit: the largest terms of the peak phase and what shrinks them."""
    peak_phase = "sampling" if plan.phase("sampling") > plan.phase("update") else "update"
    live = [t for t in plan.terms if t.phase in ("resident", peak_phase)]
    big = sorted(live, key=lambda t: t.bytes, reverse=True)
    named = ", ".join(f"{t.name} {t.bytes / GIB:.1f} GiB" for t in big[:4])
    fixes = list(dict.fromkeys(f for t in big for f in t.fixes))[:5]
    room = [n for n in plan.notes if n.startswith("no room")]
    return (
        f"needs {plan.peak / GIB:.1f} GiB per GPU, more than the {plan.capacity / GIB:.0f} GiB of one "
        f"{plan.gpu}" + (f" ({'; '.join(room)})" if room else "") + f"; largest: {named}. "
        "To change: " + " | ".join(fixes or ["a GPU with more memory (--gpu)"])
    )


def check_memory(cfg: ExperimentConfig, path: Path, processes: int) -> str:
    """`uniopd validate`'s memory check: a PlanError when the file targets a GPU (device: cuda,
    or a `# gpu:` line) that its plan does not fit; otherwise a one-line note (informational on
    a file that names no GPU, or whose models' shapes are not known here)."""
    from uniopd.setup.gpu_cards import DEFAULT_CARD, card_bytes, file_card

    card = file_card(path)
    targeted = card is not None or cfg.device == "cuda"
    try:
        plan = make_memory_plan(cfg, card_bytes(card or DEFAULT_CARD), processes)
    except PlanError as exc:
        return f"memory plan skipped: {exc}"
    if targeted and not plan.fits:
        raise PlanError(f"{path}: {refusal(plan)} (uniopd plan {path} prints every term)")
    verdict = "fits" if plan.fits else "would not fit"
    return f"memory: {plan.peak / GIB:.1f} GiB per GPU, {verdict} one {plan.gpu}" + (
        "" if targeted else " (informational: the file names no GPU)"
    )
