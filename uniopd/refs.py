"""Model references as written in an experiment file, parsed once for the schema and the loop.

    /models/qwen3-4b-math        an HF checkpoint directory (or a hub id, online)
    builtin:teacher-math         a model of the tiny world (uniopd.world)
    self                         the student's own initial weights, frozen (OPSD's teacher)
    self@ema  | self@ema=0.995   the student's exponential moving average (decay 0.99 by default)
    <any of these>+privileged    the teacher's prompt also holds the row's reference solution
    http://host:port/v1          a teacher served over HTTP (scores sampled tokens only)

Parsing is pure text: nothing is loaded or resolved here. `model_ref_problem` alone looks at the
file system (does a path exist, is a built-in name known), so that a reference to nothing is refused
when the experiment file is read, before any run directory or world build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PRIVILEGED_SUFFIX = "+privileged"
DEFAULT_EMA_DECAY = 0.99


@dataclass(frozen=True)
class TeacherRef:
    model: str  # a path, hub id, builtin:<name>, "self" or an http(s) URL
    privileged: bool = False
    ema_decay: float | None = None  # set for self@ema

    @property
    def is_self(self) -> bool:
        return self.model == "self"

    @property
    def is_server(self) -> bool:
        return self.model.startswith(("http://", "https://"))


def parse_teacher(text: str) -> TeacherRef:
    model, privileged = text.strip(), False
    if model.endswith(PRIVILEGED_SUFFIX):
        model, privileged = model.removesuffix(PRIVILEGED_SUFFIX).strip(), True
    if not model:
        raise ValueError(f"{text!r}: no model before '{PRIVILEGED_SUFFIX}'")
    ema = None
    if model.startswith("self@"):
        spec = model.removeprefix("self@")
        kind, _, value = spec.partition("=")
        if kind != "ema":
            raise ValueError(f"{text!r}: expected self, self@ema or self@ema=<decay>")
        try:
            ema = float(value) if value else DEFAULT_EMA_DECAY
        except ValueError:
            raise ValueError(f"{text!r}: EMA decay {value!r} is not a number") from None
        if not 0 < ema < 1:
            raise ValueError(f"{text!r}: EMA decay must be in (0, 1), got {ema}")
        model = "self"
    return TeacherRef(model, privileged, ema)


def model_ref_problem(ref: str, paths: bool = True) -> str | None:
    """What is wrong with a model reference, in words, or None. Checked: a `builtin:` name the
    tiny world does not have, and (with `paths`) a local path (absolute, or starting with `.` or
    `~`) that does not exist on this machine. A bare `org/name` may be a hub id, and is left to
    the loader."""
    if ref.startswith("builtin:"):
        from uniopd.world.paths import check_name

        try:
            check_name(ref.removeprefix("builtin:"))
        except ValueError as exc:
            return str(exc)
        return None
    if paths and ref.startswith(("/", ".", "~")):
        path = os.path.expanduser(ref)
        if not os.path.exists(path):
            return f"{ref}: no such file or directory"
    return None


def resolve_model(ref: str) -> str:
    """A loadable path for a model ref: `builtin:<name>` -> the tiny world's folder for it (which
    may still need building); anything else as written."""
    if ref.startswith("builtin:"):
        from uniopd.world.paths import model_dir

        return str(model_dir(ref.removeprefix("builtin:")))
    return ref
