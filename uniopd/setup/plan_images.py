"""The plan's checks of images and modalities: rows with pictures need an image-text student, each
teacher must be able to read what its rows hold, and a teacher template's fields must be on every
row it reads (docs/multimodal.md). Read from configs and processors only, before any weights."""

from __future__ import annotations

from uniopd.config import ExperimentConfig
from uniopd.refs import parse_teacher
from uniopd.tasks.problem import Problem


class PlanError(ValueError):
    """Bad input found while planning a run (unknown domain, missing teacher, ...)."""


def check_images(cfg: ExperimentConfig, problems: list[Problem], sources_of: dict) -> None:
    """Rows with images need a student that reads them: refused here for a text student, rather
    than trained on with their images left out."""
    with_images = [p for p in problems if p.images]
    if not with_images or reads_images(cfg.student.model):
        return
    first, n = with_images[0], len(with_images)
    rows = f"{n} row carries" if n == 1 else f"{n} rows carry"
    raise PlanError(
        f"data: {rows} images (e.g. {first.id} from {', '.join(sources_of[first.domain])}), "
        f"but student.model ({cfg.student.model}) is a text model, which would never see them; "
        "give an image-text student (a checkpoint whose config has a vision_config, e.g. "
        "builtin:student-visual), or drop the images column to train on the text alone"
    )


def check_modalities(cfg: ExperimentConfig, train: list[Problem]) -> None:
    """An image-text student's checkpoint has a processor that reads images, and each teacher
    can read what its rows hold (modality_problem), from configs and processors alone."""
    from uniopd.engine.loading import ModelLoadError, load_processor
    from uniopd.refs import resolve_model

    student_sees = reads_images(cfg.student.model)
    if student_sees and not cfg.student.model.startswith("builtin:"):
        try:
            load_processor(resolve_model(cfg.student.model), "student.model")
        except ModelLoadError as exc:
            raise PlanError(str(exc)) from None
    if not cfg.method.needs_teacher():
        return
    for domain, text in sorted(cfg.teachers.items()):
        ref = parse_teacher(text)
        if ref.is_self:
            continue
        rows = [p for p in train if p.domain == domain]
        if not rows:  # never asked, never loaded
            continue
        teacher_sees = not ref.is_server and reads_images(ref.model)  # a server: token ids
        problem = modality_problem(cfg, domain, text, student_sees, teacher_sees, rows)
        if problem:
            raise PlanError(problem)


def modality_problem(
    cfg: ExperimentConfig,
    domain: str,
    ref: str,
    student_sees: bool,
    teacher_sees: bool,
    rows: list[Problem],
) -> str | None:
    """Why the teacher of `domain` cannot score its rows, or None: an image-text teacher of a
    text student, or a text teacher of rows with pictures and no teacher template (it would read
    the question without the picture it asks about)."""
    if teacher_sees and not student_sees:
        return (
            f"teachers.{domain} ({ref}): an image-text teacher, but the student "
            f"({cfg.student.model}) is a text model; give it a text teacher, or an image-text "
            "student"
        )
    row = next((p for p in rows if p.images), None)
    if student_sees and not teacher_sees and row is not None:
        if domain not in cfg.data.teacher_templates:
            return (
                f"teachers.{domain} ({ref}): a text teacher of rows with images (e.g. {row.id}), "
                f"and data.teacher_templates has no {domain!r} entry: it would read the question "
                "without the picture. Give the text rendering it reads instead, e.g. "
                f"data.teacher_templates.{domain}: '{{rendering}} {{prompt}}'"
            )
    return None


def reads_images(ref: str) -> bool:
    """Whether model `ref` is an image-text model, from its config alone (a built-in one from
    its recipe, built or not)."""
    if ref.startswith("builtin:"):
        from uniopd.world.models import is_image_text_model

        return is_image_text_model(ref.removeprefix("builtin:"))
    from uniopd.engine.loading import is_image_text_checkpoint
    from uniopd.refs import resolve_model

    return is_image_text_checkpoint(resolve_model(ref))


def check_teacher_templates(cfg: ExperimentConfig, train: list[Problem], sources_of: dict) -> None:
    """Every training row of a domain with a teacher template has the fields it reads (its text
    rendering, for a cross-modal teacher)."""
    from uniopd.engine.prompts import template_fields

    for domain, template in sorted(cfg.data.teacher_templates.items()):
        fields = template_fields(template)
        for p in train:
            missing = [f for f in fields if p.domain == domain and f not in p.meta]
            if missing:
                raise PlanError(
                    f"data.teacher_templates.{domain}: row {p.id} (from "
                    f"{', '.join(sources_of[domain])}) has no field {missing[0]!r}, which the "
                    f"teacher's template {template!r} reads (the row's fields: "
                    f"{', '.join(sorted(p.meta)) or 'none'})"
                )
