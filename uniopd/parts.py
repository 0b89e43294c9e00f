"""The models a run trains with, loaded from its plan: the tokenizer, the student, the routed
teachers and the reference model, each only when the method needs it.

References are resolved here (`builtin:` to the tiny world's folders, `self` to the student's
initial weights), above the engine, which only ever sees paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from uniopd.engine import loading
from uniopd.engine.teachers import TeacherPool
from uniopd.objectives import Need
from uniopd.plan import Plan
from uniopd.refs import parse_teacher, resolve_model
from uniopd.verifiers import get_verifier


@dataclass
class Parts:
    device: torch.device
    dtype: torch.dtype
    tokenizer: Any
    student: torch.nn.Module
    verifiers: dict
    teachers: TeacherPool | None = None
    reference: torch.nn.Module | None = None  # ExOPD's pi_ref
    ema_teachers: dict[str, float] = field(default_factory=dict)  # teacher ref -> EMA decay

    def teacher_model(self, ref: str) -> torch.nn.Module:
        assert self.teachers is not None, "this run loads no teacher"
        return self.teachers.models_by_ref[ref]


def load_parts(plan: Plan, checkpoint: str | None = None, build=None) -> Parts:
    """`checkpoint` (a resumed run's) replaces the student's starting weights; `self` teachers
    and references still start from `cfg.student`, the initial weights.

    `build(refs)`, when given, builds missing `builtin:` models: all side by side when the
    student is one of them, else after the student loaded, so a broken checkpoint of the user's
    own fails in seconds instead of after minutes of building teachers."""
    cfg = plan.cfg
    if build is not None and cfg.student.startswith("builtin:"):
        build(builtin_refs(plan))
    device = loading.pick_device(cfg.device)
    dtype = loading.pick_dtype(cfg.dtype, device)
    student_path = resolve_model(cfg.student)
    tokenizer = loading.load_tokenizer(student_path, cfg.student)
    student = loading.load_model(
        str(checkpoint or student_path), device, dtype, trainable=True, name=cfg.student
    )
    parts = Parts(
        device,
        dtype,
        tokenizer,
        student,
        {d: get_verifier(name) for d, name in plan.verifier_for.items()},
    )
    if build is not None:
        build(builtin_refs(plan))
    needs = cfg.method.needs()
    if cfg.method.needs_teacher():
        parts.teachers = _load_teachers(plan, parts)
    if Need.REFERENCE_LOGP in needs:
        ref = next(r for r in (o.reference_model() for _, _, o in cfg.method.objectives()) if r)
        path = student_path if ref == "self" else resolve_model(ref)
        loading.check_same_interface(tokenizer, loading.load_tokenizer(path, ref), ref, "reference")
        parts.reference = loading.load_model(path, device, dtype, trainable=False, name=ref)
    return parts


def _load_teachers(plan: Plan, parts: Parts) -> TeacherPool:
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
        path = resolve_model(cfg.student if ref.is_self else ref.model)
        if ref.is_server:
            raise loading.ModelLoadError(
                f"teachers.{domain} ({text}): teachers served over HTTP are not supported by this "
                "version; name a checkpoint directory"
            )
        if not ref.is_self:
            loading.check_same_interface(
                parts.tokenizer, loading.load_tokenizer(path, text), text, domain
            )
        models[text] = loading.load_model(
            path, parts.device, parts.dtype, trainable=False, name=text
        )
        if ref.ema_decay is not None:
            parts.ema_teachers[text] = ref.ema_decay
    return TeacherPool(models, routing, privileged)


def builtin_refs(plan: Plan) -> list[str]:
    """The `builtin:` models this run loads (student, routed teachers, reference)."""
    cfg = plan.cfg
    refs = [cfg.student]
    if cfg.method.needs_teacher():
        asked = {p.domain for p in plan.train}
        refs += [parse_teacher(t).model for d, t in sorted(cfg.teachers.items()) if d in asked]
    refs += [o.reference_model() or "self" for _, _, o in cfg.method.objectives()]
    return sorted({r for r in refs if r.startswith("builtin:")})
