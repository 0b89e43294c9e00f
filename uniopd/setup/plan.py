"""Everything about a run that can be checked before any model is loaded or any directory made.

Data is read, every row's domain is matched to a verifier and (for OPD) to a teacher; a problem here
is bad input, reported with exit code 2 before compute starts.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from uniopd.config import ExperimentConfig
from uniopd.config.data import SourceConfig
from uniopd.config.pair_file import reads_file_scores
from uniopd.data import load_source
from uniopd.data.pair_files import pair_problems
from uniopd.refs import model_ref_problem, parse_teacher
from uniopd.setup.plan_images import (
    PlanError,
    check_images,
    check_modalities,
    check_teacher_templates,
    modality_problem,
    reads_images,
)
from uniopd.tasks.problem import Problem
from uniopd.verifiers import VERIFIERS

log = logging.getLogger(__name__)


@dataclass
class Plan:
    cfg: ExperimentConfig
    train: list[Problem]
    eval: list[Problem]
    verifier_for: dict[str, str]  # domain -> verifier name
    sources_of: dict[str, list[str]] = field(default_factory=dict)  # domain -> data sources

    @property
    def domains(self) -> list[str]:
        return sorted(self.verifier_for)


def _load(sources: list[str | SourceConfig], limit, sources_of: dict) -> list[Problem]:
    """Every source's problems; a source is a spec string or a mapping (SourceConfig)."""
    problems = []
    for entry in sources:
        if isinstance(entry, SourceConfig):
            rows = load_source(entry.source, **entry.load_args(), limit=limit)
            label = entry.label
        else:
            rows, label = load_source(entry, limit=limit), entry
        for domain in {p.domain for p in rows}:
            sources_of[domain].append(label)
        problems += rows
    return problems


def make_plan(cfg: ExperimentConfig, processes: int | None = None, *, models: bool = True) -> Plan:
    """`processes`: the data-parallel processes the run will have (default: the launcher's).
    `models=False` opens no checkpoint (the LoRA targets are read from the student's config
    otherwise): what `uniopd validate --no-models` checks on a machine without the models.
    `builtin:` models resolve in the experiment's world from here on (in this process and those
    it starts)."""
    cfg.world.select()
    sources_of: dict[str, list[str]] = defaultdict(list)
    train = _load(cfg.data.train, cfg.data.limit, sources_of)
    if cfg.data.pairs is not None:  # offline preference pairs: their prompts, never graded
        train = pair_problems(cfg.data.pairs, cfg.data.limit, reads_file_scores(cfg))
    evaluation = _load(cfg.data.eval, None, sources_of)  # eval.max_prompts_per_domain caps these
    if cfg.eval.max_prompts_per_domain:
        seen: Counter = Counter()
        kept = []
        for p in evaluation:
            if seen[p.domain] < cfg.eval.max_prompts_per_domain:
                seen[p.domain] += 1
                kept.append(p)
        evaluation = kept

    verifier_for = {}
    for domain in sorted(sources_of):
        name = cfg.verifiers.get(domain, domain)
        if domain in cfg.verifiers and name not in VERIFIERS:
            raise PlanError(
                f"verifiers.{domain}: unknown verifier {name!r}; known verifiers are "
                f"{', '.join(VERIFIERS.names())}"
            )
        if name not in VERIFIERS:
            where = ", ".join(sources_of[domain])
            raise PlanError(
                f"data: unknown domain {domain!r} (rows from {where}): no verifier grades it; "
                f"known verifiers are {', '.join(VERIFIERS.names())} — map it with "
                f"verifiers.{domain}=<name>"
            )
        verifier_for[domain] = name
    if cfg.data.pairs is not None:  # named in messages; pair domains need no verifier
        for domain in {p.domain for p in train}:
            sources_of[domain].append(cfg.data.pairs)

    if cfg.method.needs_teacher():
        train_domains = sorted({p.domain for p in train})
        missing = [d for d in train_domains if d not in cfg.teachers]
        if missing:
            d = missing[0]
            raise PlanError(
                f"teachers.{d}: missing teacher for domain {d!r} (rows from "
                f"{', '.join(sources_of[d])}); method '{cfg.method.name}' routes every prompt to "
                f"its domain's teacher — teachers are named for {sorted(cfg.teachers) or 'no domain'}"
            )
    for d in cfg.teachers:
        if d not in verifier_for:
            log.warning("teachers.%s names a domain no data row has; it will never be asked", d)
    _check_privileged(cfg, train, sources_of)
    if models:
        check_images(cfg, train + evaluation, sources_of)
        check_modalities(cfg, train)
    check_teacher_templates(cfg, train, sources_of)
    if models:
        _check_model_paths(cfg)
        _check_lora(cfg)
    processes = processes if processes is not None else world_size()
    check_processes(cfg, processes)
    check_sharding(cfg, processes)
    check_devices(cfg, processes)
    check_engine(cfg, models)
    return Plan(
        cfg=cfg,
        train=train,
        eval=evaluation,
        verifier_for=verifier_for,
        sources_of=dict(sources_of),
    )


def _check_model_paths(cfg: ExperimentConfig) -> None:
    """A student or teacher path that does not exist here is refused before any run directory,
    world build or weight load (`builtin:` names are checked with the schema)."""
    named = {"student.model": cfg.student.model}
    for domain, ref in cfg.teachers.items():
        teacher = parse_teacher(ref)
        if not (teacher.is_self or teacher.is_server):
            named[f"teachers.{domain}"] = teacher.model
    for where, ref in named.items():
        problem = model_ref_problem(ref)
        if problem:
            raise PlanError(f"{where}: {problem}")


def check_engine(cfg: ExperimentConfig, models: bool = True) -> None:
    """`rollout.engine` is registered, installed and can sample this student (whether it is an
    image-text model is read from its config: with `models`, or for a built-in one)."""
    from uniopd.engine.rollout import engine_problems

    name = cfg.rollout.engine
    student = cfg.student.model
    images = (models or student.startswith("builtin:")) and reads_images(student)
    problems = engine_problems(
        name,
        sharded=cfg.train.fsdp,
        lora=cfg.student.lora is not None,
        images=images,
    )
    if problems:
        raise PlanError(f"rollout.engine = {name}: " + "; ".join(problems))


def _check_privileged(cfg: ExperimentConfig, train: list[Problem], sources_of: dict) -> None:
    """A teacher that sees the reference solution (OPSD) needs one on every row it scores."""
    if not cfg.method.needs_teacher():
        return
    for domain, ref in sorted(cfg.teachers.items()):
        if not parse_teacher(ref).privileged:
            continue
        bare = [p for p in train if p.domain == domain and not p.solution]
        if bare:
            raise PlanError(
                f"teachers.{domain} = {ref}: a privileged teacher reads each row's reference "
                f"solution, but {len(bare)} {domain} training rows have none (e.g. {bare[0].id} from "
                f"{', '.join(sources_of[domain])}); give the rows a 'solution' field"
            )


def _check_lora(cfg: ExperimentConfig) -> None:
    """Every LoRA target module names a layer of the student, read from its config alone (the
    module tree is built on the meta device: no weights, seconds even for a large model)."""
    lora, ref = cfg.student.lora, cfg.student.model
    if lora is None:
        return
    from uniopd.engine.lora import LoraError, check_lora_targets

    if ref.startswith("builtin:"):
        from uniopd.world.models import planned_config
        from uniopd.world.paths import is_built, model_dir

        name = ref.removeprefix("builtin:")
        try:  # an unbuilt model is checked against the config it will be built with
            source = str(model_dir(name)) if is_built(name) else planned_config(name)
        except ValueError as exc:
            raise PlanError(f"student.model: {exc}") from None
    elif Path(ref).is_dir():
        source = ref
    else:  # a hub id: its config may need the network; the loaded model is checked instead
        return
    try:
        check_lora_targets(source, lora.target_modules, ref)
    except LoraError as exc:
        raise PlanError(f"student.lora.target_modules: {exc}") from None


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_processes(cfg: ExperimentConfig, processes: int) -> None:
    """Each process takes whole groups of an equal share of the B prompts."""
    b = cfg.rollout.prompts_per_batch
    if processes < 1:
        raise PlanError(f"--nproc {processes}: needs at least one process")
    if processes > b:
        raise PlanError(
            f"--nproc {processes}: rollout.prompts_per_batch is {b}, so at most {b} processes get "
            "a group each (a group never spans processes)"
        )
    if b % processes:
        raise PlanError(
            f"rollout.prompts_per_batch = {b} does not divide among {processes} processes: each "
            f"process takes an equal share of whole groups (use a multiple of {processes})"
        )


def check_sharding(cfg: ExperimentConfig, processes: int) -> None:
    if not cfg.train.fsdp:
        return
    if processes < 2:
        raise PlanError(
            "train.fsdp shards the student over data-parallel processes: run with --nproc 2 or "
            "more (or accelerate launch), or set train.fsdp=false"
        )
    if cfg.student.lora is not None:
        raise PlanError(
            "train.fsdp with student.lora is not supported: an adapter is small, "
            "use one or the other"
        )
    ema = [d for d, t in cfg.teachers.items() if parse_teacher(t).ema_decay is not None]
    if ema:
        raise PlanError(
            f"train.fsdp with an EMA teacher (teachers.{ema[0]}) is not supported: the moving "
            "average would need the student's full weights on every process"
        )


def check_devices(cfg: ExperimentConfig, processes: int = 1) -> None:
    """Precision, attention kernel and teacher placement, against this machine and the run's
    processes (each places its own teachers: uniopd.setup.teacher_devices)."""
    from uniopd.engine.loading import ModelLoadError, check_attn_implementation, pick_device
    from uniopd.engine.precision import PrecisionError, resolve_mode
    from uniopd.setup.teacher_devices import check_teacher_devices

    try:
        device = pick_device(cfg.device)
        resolve_mode(cfg.precision, device)
        check_attn_implementation(cfg.attn_implementation)
    except (ModelLoadError, PrecisionError) as exc:
        raise PlanError(str(exc)) from None
    check_teacher_devices(cfg.teacher_device, cfg.teachers, processes)


def check_checkpoints(cfg: ExperimentConfig) -> list[str]:
    """The student's, teachers' and reference's tokenizers, read without any weights: each loads,
    every teacher shares the student's vocabulary, and a teacher's chat template equals the
    student's or can be bridged (uniopd.engine.prompts). What `uniopd validate` adds to the plan;
    returns a note for each model it could not check here (an unbuilt builtin:, a served one)."""
    from uniopd.engine.loading import ModelLoadError, check_same_interface, load_tokenizer
    from uniopd.engine.prompts import PromptFormat
    from uniopd.refs import resolve_model

    notes: list[str] = []

    def tokenizer(ref: str, where: str):
        if ref.startswith("builtin:"):
            from uniopd.world.paths import is_built

            if not is_built(ref.removeprefix("builtin:")):
                notes.append(f"{where}: {ref} is not built yet (uniopd world build); not checked")
                return None
        try:
            return load_tokenizer(resolve_model(ref), ref)
        except ModelLoadError as exc:
            raise PlanError(f"{where}: {exc}") from None

    student = tokenizer(cfg.student.model, "student.model")
    if student is None:
        return notes
    student_images: tuple[int, ...] = ()
    if reads_images(cfg.student.model):
        from uniopd.engine.loading import load_processor
        from uniopd.engine.vision import image_token_ids

        try:
            processor = load_processor(resolve_model(cfg.student.model), "student.model")
        except ModelLoadError as exc:
            raise PlanError(str(exc)) from None
        student, student_images = processor.tokenizer, image_token_ids(processor)
    fmt = PromptFormat.of(cfg.data)
    teachers = cfg.teachers if cfg.method.needs_teacher() else {}
    for domain, text in sorted(teachers.items()):
        ref = parse_teacher(text)
        if ref.is_self:
            continue
        source = cfg.teacher_tokenizers.get(domain)
        if ref.is_server:
            notes.append(f"teachers.{domain}: {ref.model} is served; it is asked at run start")
            if source is None:
                continue
        where = f"teacher_tokenizers.{domain}" if source else f"teachers.{domain}"
        teacher = tokenizer(source or ref.model, where)
        if teacher is not None:
            # a text teacher of an image-text student lacks exactly the student's image tokens
            text_reader = student_images and (ref.is_server or not reads_images(ref.model))
            try:
                check_same_interface(
                    student, teacher, text, domain, fmt, student_images if text_reader else ()
                )
            except ModelLoadError as exc:
                raise PlanError(str(exc)) from None
    return notes


__all__ = ["Plan", "PlanError", "make_plan", "modality_problem", "reads_images"]
