"""The models a run trains with, loaded from its plan: the tokenizer, the student, the routed
teachers and the reference model, each only when the method needs it.

References are resolved here (`builtin:` to the tiny world's folders, `self` to the student's
initial weights), above the engine, which only ever sees paths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from uniopd.engine import loading
from uniopd.engine.distributed import Dist
from uniopd.engine.fsdp import shard_model
from uniopd.engine.lora import apply_lora, load_adapter
from uniopd.engine.precision import Precision, vanishing_lr
from uniopd.engine.prompts import PromptFormat
from uniopd.engine.teacher_client import ServedTeacher, TeacherServerError
from uniopd.engine.teachers import TeacherPool
from uniopd.engine.vision import image_token_ids
from uniopd.objectives import Need
from uniopd.refs import parse_teacher, resolve_model
from uniopd.setup.plan import Plan, modality_problem
from uniopd.setup.teacher_devices import Setting, device_name, form_for
from uniopd.verifiers import get_verifier

log = logging.getLogger(__name__)


@dataclass
class Parts:
    device: torch.device
    precision: Precision
    tokenizer: Any
    student: torch.nn.Module
    verifiers: dict
    teachers: TeacherPool | None = None
    reference: torch.nn.Module | None = None  # ExOPD's pi_ref
    ema_teachers: dict[str, float] = field(default_factory=dict)  # teacher ref -> EMA decay
    dist: Dist = field(default_factory=Dist)  # this process among the data-parallel ones
    prompt_format: PromptFormat = field(default_factory=PromptFormat)
    # teacher ref -> its tokenizer, for teachers whose chat template differs from the student's
    # (bridged, checked at start): they read the prompts rendered in their own template
    teacher_tokenizers: dict[str, Any] = field(default_factory=dict)
    # an image-text student's processor (uniopd.engine.vision); None for a text student
    processor: Any = None
    # text teachers of an image-text student (cross-modal): they read each row as text, through
    # data.teacher_templates where its domain has one
    text_readers: set[str] = field(default_factory=set)

    def teacher_model(self, ref: str) -> torch.nn.Module:
        assert self.teachers is not None, "this run loads no teacher"
        return self.teachers.models_by_ref[ref]


def load_parts(
    plan: Plan, checkpoint: str | Path | None = None, build=None, dist: Dist | None = None
) -> Parts:
    """`checkpoint` (a resumed run's) replaces the student's starting weights; `self` teachers
    and references still start from `cfg.student.model`, the initial weights.

    `build(refs)`, when given, builds missing `builtin:` models: all side by side when the
    student is one of them, else after the student loaded, so a broken checkpoint of the user's
    own fails in seconds instead of after minutes of building teachers."""
    cfg = plan.cfg
    served = connect_served_teachers(plan)  # a server that is down stops the run in seconds
    if build is not None and cfg.student.model.startswith("builtin:"):
        build(builtin_refs(plan))
    dist = dist or Dist()
    device = dist.device(loading.pick_device(cfg.device))
    precision = Precision(cfg.precision, device)
    dtype = precision.student_dtype
    student_path = resolve_model(cfg.student.model)
    processor = loading.load_processor(student_path, cfg.student.model)
    tokenizer = (
        processor.tokenizer
        if processor is not None
        else loading.load_tokenizer(student_path, cfg.student.model)
    )
    lora = cfg.student.lora  # a LoRA run's checkpoint holds the adapter, not the base weights
    student = loading.load_model(
        str(checkpoint if checkpoint and lora is None else student_path),
        device,
        dtype,
        trainable=True,
        name=cfg.student.model,
        attn_implementation=cfg.attn_implementation,
    )
    if lora is not None:
        student = _with_lora(student, lora, checkpoint, cfg.student.model)
    if cfg.train.gradient_checkpointing:
        loading.enable_activation_checkpointing(student)
    if cfg.train.fsdp:
        student = shard_model(student, device, dist.world, precision.compute_dtype)
    if precision.mode == "bf16-pure":
        warn_vanishing_updates(student, cfg.train.lr)
    parts = Parts(
        device,
        precision,
        tokenizer,
        student,
        {d: get_verifier(name) for d, name in plan.verifier_for.items()},
        dist=dist,
        prompt_format=PromptFormat.of(cfg.data),
        processor=processor,
    )
    if build is not None:
        build(builtin_refs(plan))
    needs = cfg.method.needs()
    if cfg.method.needs_teacher():
        parts.teachers = _load_teachers(plan, parts, served)
    if Need.REFERENCE_LOGP in needs:
        ref = next(r for r in (o.reference_model() for _, _, o in cfg.method.objectives()) if r)
        path = student_path if ref == "self" else resolve_model(ref)
        loading.check_same_interface(tokenizer, loading.load_tokenizer(path, ref), ref, "reference")
        parts.reference = loading.load_model(
            path,
            device,
            precision.teacher_dtype,
            trainable=False,
            name=ref,
            attn_implementation=cfg.attn_implementation,
        )
    return parts


def _load_teachers(plan: Plan, parts: Parts, served: dict[str, ServedTeacher]) -> TeacherPool:
    cfg = plan.cfg
    asked = {p.domain for p in plan.train}  # a teacher no prompt routes to is not loaded
    models: dict = {}
    routing, privileged = {}, []
    for domain, text in sorted(cfg.teachers.items()):
        if domain not in asked:
            continue
        ref = parse_teacher(text)
        routing[domain] = text
        if ref.privileged:
            privileged.append(text)
        if text in models:
            continue
        tokenizer_at = cfg.teacher_tokenizers.get(domain)
        if ref.is_server:  # connected (its model listed) at the start of load_parts
            models[text] = served[text]
            # a served model scores token ids only: for an image-text student, a text reader
            if _check_modalities(plan, parts, False, text):
                parts.text_readers.add(text)
            _check_served_vocabulary(served[text], parts.student, text, domain)
            if tokenizer_at:  # else it is taken to share the student's tokenizer
                _check_teacher_tokenizer(parts, tokenizer_at, text, domain)
            continue
        path = resolve_model(cfg.student.model if ref.is_self else ref.model)
        if not ref.is_self:
            if _check_modalities(plan, parts, loading.is_image_text_checkpoint(path), text):
                parts.text_readers.add(text)
            _check_teacher_tokenizer(parts, tokenizer_at or path, text, domain)
        # an EMA teacher follows the student's weights: it keeps their precision
        dtype = parts.precision.student_dtype if ref.ema_decay else parts.precision.teacher_dtype
        models[text] = loading.load_model(
            path,
            teacher_device(cfg.teacher_device, domain, parts.device, parts.dist.local_rank),
            dtype,
            trainable=False,
            name=text,
            attn_implementation=cfg.attn_implementation,
        )
        if ref.ema_decay is not None:
            parts.ema_teachers[text] = ref.ema_decay
        if text in parts.text_readers and Need.TEACHER_LOGITS in cfg.method.needs():
            _check_full_vocabulary(parts.student, models[text], text, domain)
    return TeacherPool(models, routing, privileged)


def _check_full_vocabulary(student, teacher, ref: str, domain: str) -> None:
    """A full-distribution objective compares the two models over every token id: a text
    teacher without the image-text student's image tokens has fewer, and no probability for
    them to compare."""
    rows = [int(m.get_output_embeddings().weight.shape[0]) for m in (student, teacher)]
    if rows[0] != rows[1]:
        raise loading.ModelLoadError(
            f"teachers.{domain} ({ref}): the objective compares full distributions, but this "
            f"text teacher scores {rows[1]} token ids and the image-text student {rows[0]} (its "
            "image tokens); use a sampled-token or top-K objective (opd, topk) with it"
        )


def _check_served_vocabulary(client: ServedTeacher, student, ref: str, domain: str) -> None:
    """A served model that scores another number of token ids than the student's output head
    has is another vocabulary: refused before any rollout (a server that does not say is taken
    at its word, or checked through teacher_tokenizers)."""
    rows = int(student.get_output_embeddings().weight.shape[0])
    if client.vocab_size is not None and client.vocab_size != rows:
        raise loading.ModelLoadError(
            f"teachers.{domain} ({ref}): the served model scores {client.vocab_size} token ids, "
            f"the student's output head has {rows}; OPD compares log-probs of the same token "
            "ids, so teacher and student must share one vocabulary"
        )


def _check_modalities(plan: Plan, parts: Parts, teacher_sees_images: bool, ref: str) -> bool:
    """Whether teacher `ref` is a text teacher of an image-text student (cross-modal: it reads
    each row as text); what it cannot read is refused (uniopd.setup.plan.modality_problem, checked
    again here against the checkpoints as loaded)."""
    student_sees = parts.processor is not None
    for domain in sorted(d for d, t in plan.cfg.teachers.items() if t == ref):
        rows = [p for p in plan.train if p.domain == domain]
        problem = modality_problem(plan.cfg, domain, ref, student_sees, teacher_sees_images, rows)
        if problem:
            raise loading.ModelLoadError(problem)
    return student_sees and not teacher_sees_images


def _check_teacher_tokenizer(parts: Parts, path: str, ref: str, domain: str) -> None:
    """Same vocabulary as the student's (a text teacher of an image-text student: its image
    tokens aside), and the same chat template or one that can be bridged: then the teacher reads
    the prompts rendered in its own template."""
    teacher_tok = loading.load_tokenizer(path, ref)
    image_tokens = image_token_ids(parts.processor) if parts.processor is not None else ()
    if ref not in parts.text_readers:
        image_tokens = ()
    if loading.check_same_interface(
        parts.tokenizer, teacher_tok, ref, domain, parts.prompt_format, image_tokens
    ):
        if parts.processor is not None and ref not in parts.text_readers:
            raise loading.ModelLoadError(
                f"teachers.{domain} ({ref}): an image-text teacher whose chat template differs "
                "from the student's; it must read the student's own prompt (images and all), so "
                "give it the student's processor and template"
            )
        parts.teacher_tokenizers[ref] = teacher_tok


def connect_served_teachers(plan: Plan) -> dict[str, ServedTeacher]:
    """Teacher ref -> client, for the routed teachers served over HTTP, each server asked for
    its model (GET /v1/models); one that does not answer is an error naming its URL."""
    cfg = plan.cfg
    if not cfg.method.needs_teacher():
        return {}
    asked = {p.domain for p in plan.train}
    settings = cfg.teacher_server.model_dump()
    connect_timeout = settings.pop("connect_timeout_s")
    served: dict[str, ServedTeacher] = {}
    for domain, text in sorted(cfg.teachers.items()):
        ref = parse_teacher(text)
        if domain not in asked or not ref.is_server or text in served:
            continue
        client = ServedTeacher(ref.model, **settings)
        try:
            name = client.connect(connect_timeout)
        except TeacherServerError as exc:
            raise loading.ModelLoadError(f"teachers.{domain}: {exc}") from exc
        log.info("teachers.%s: %s serves %s", domain, ref.model, name)
        served[text] = client
    return served


def _with_lora(student: torch.nn.Module, lora, checkpoint, name: str) -> torch.nn.Module:
    """The base student wrapped in its LoRA adapter: a resumed run's, from the checkpoint, or a
    fresh one; only the adapter trains (uniopd.engine.lora)."""
    if checkpoint is not None:
        return load_adapter(student, checkpoint, name)
    return apply_lora(student, lora.r, lora.alpha, lora.dropout, lora.target_modules, name)


def teacher_device(
    setting: Setting, domain: str, student: torch.device, local_rank: int = 0
) -> torch.device:
    """Where this process (of local rank `local_rank`) puts `domain`'s teacher: the
    `teacher_device` form for it (uniopd.setup.teacher_devices; checked for every process
    before any model loads by uniopd.setup.plan), or the student's device."""
    form = form_for(setting, domain)
    return torch.device(device_name(form, local_rank)) if form else student


def warn_vanishing_updates(student: torch.nn.Module, lr: float) -> None:
    median, smallest = vanishing_lr(student)
    level = logging.WARNING if lr < smallest else logging.INFO
    log.log(
        level,
        "precision bf16-pure: a bf16 weight of the student's median size %.3g keeps only changes "
        "of at least %.2g, and Adam moves weights by about lr per step: at lr %.2g %s; "
        "bf16-mixed keeps float32 master weights",
        median,
        smallest,
        lr,
        "most updates round away"
        if lr < smallest
        else f"updates below lr {smallest:.2g} would round away",
    )


def builtin_refs(plan: Plan) -> list[str]:
    """The `builtin:` models this run loads (student, routed teachers, reference)."""
    cfg = plan.cfg
    refs = [cfg.student.model]
    if cfg.method.needs_teacher():
        asked = {p.domain for p in plan.train}
        refs += [parse_teacher(t).model for d, t in sorted(cfg.teachers.items()) if d in asked]
    refs += [o.reference_model() or "self" for _, _, o in cfg.method.objectives()]
    return sorted({r for r in refs if r.startswith("builtin:")})
