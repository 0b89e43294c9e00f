"""Where the tiny world lives on disk: a folder per recipe under $UNIOPD_HOME. Paths only, no
building, so anything that resolves a `builtin:` reference can use it without pulling in the
builder (which trains models through the training loop)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from uniopd.home import uniopd_home
from uniopd.world.recipe import DEFAULT, active_recipe

MODEL_NAMES = tuple(DEFAULT["models"])


def world_dir() -> Path:
    """Named by a hash of the recipe: changing it builds a new world instead of mixing models."""
    digest = hashlib.sha256(json.dumps(active_recipe(), sort_keys=True).encode()).hexdigest()[:10]
    return uniopd_home() / f"world-{digest}"


def check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(
            f"unknown built-in model 'builtin:{name}'; known: "
            + ", ".join(f"builtin:{n}" for n in MODEL_NAMES)
        )


def model_dir(name: str) -> Path:
    """Directory of a built-in model (`student`, `teacher-math`, ...); it may not be built yet."""
    check_name(name)
    return world_dir() / name


def is_built(name: str) -> bool:
    return (model_dir(name) / "config.json").exists()
