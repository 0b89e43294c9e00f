"""Where the tiny world lives on disk. Paths only, no building, so anything that resolves a
`builtin:` reference can use it without pulling in the builder (which trains models through the
training loop).

    $UNIOPD_HOME/world-<hash of the shared settings>/     tokenizer, manifest.json
        <name>-<hash of the model's spec>/                one folder per built model

The shared settings are everything in the recipe but the models (version, seed, tokenizer, SFT
and GRPO settings); a model's folder is keyed by them and its own spec, so two worlds that differ
in one dial share every model the dial does not change, and changing a model's recipe builds a new
folder instead of mixing old and new weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from uniopd.home import uniopd_home
from uniopd.world.recipe import DEFAULT, active_recipe

MODEL_NAMES = tuple(DEFAULT["models"])


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def shared_settings(recipe: dict) -> dict:
    return {k: v for k, v in recipe.items() if k != "models"}


def world_dir(recipe: dict | None = None) -> Path:
    return uniopd_home() / f"world-{_digest(shared_settings(recipe or active_recipe()))}"


def model_key(name: str, recipe: dict | None = None) -> str:
    """`<name>-<hash>`: the folder name of built-in model `name` under `recipe` (default: the
    active one)."""
    recipe = recipe or active_recipe()
    if name not in recipe["models"]:
        raise ValueError(
            f"builtin:{name} is not part of world version {recipe['version']}; it came with a "
            "later version (world.version)"
        )
    spec = recipe["models"][name]
    keyed = {"shared": shared_settings(recipe), name: spec}
    if "init" in spec:  # a model that starts from another changes with it
        keyed["init"] = model_key(spec["init"], recipe)
    return f"{name}-{_digest(keyed)}"


def check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(
            f"unknown built-in model 'builtin:{name}'; known: "
            + ", ".join(f"builtin:{n}" for n in MODEL_NAMES)
        )


def model_dir(name: str, recipe: dict | None = None) -> Path:
    """Directory of a built-in model (`student`, `teacher-math`, ...); it may not be built yet."""
    check_name(name)
    return world_dir(recipe) / model_key(name, recipe)


def is_built(name: str) -> bool:
    return (model_dir(name) / "config.json").exists()


def world_record(cfg) -> dict | None:
    """What a run's meta.json says of its tiny world: the recipe version, the dials and the folder
    of each built-in model it uses; None when it uses none."""
    refs = [cfg.student.model, *cfg.teachers.values()]
    names = sorted({r.removeprefix("builtin:") for r in refs if r.startswith("builtin:")})
    if not names and cfg.world.difficulty_skew is None:
        return None
    return {
        **cfg.world.model_dump(),
        "models": {f"builtin:{n}": str(model_dir(n)) for n in names},
    }
