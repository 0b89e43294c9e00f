"""Build (or find cached) the tiny world: tokenizer, two domain experts and a weaker student.

The experts are made the way the paper makes them: a supervised warm start on the domain, then
GRPO on the domain through the project's own training loop. The student is smaller and gets a
short warm start on both domains, so it starts well below the experts with room to learn.

    uniopd world build            # build what is missing (also happens on first use)
    uniopd world build --force    # rebuild from scratch
    uniopd world info             # where it is and what each model scores

Everything lands in $UNIOPD_HOME (default ~/.cache/uniopd) under a directory named by a hash of the
recipe (world/recipe.py), so changing the recipe builds a new world instead of mixing old and new models.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from uniopd.world.recipe import DEFAULT, active_recipe

log = logging.getLogger(__name__)

MODEL_NAMES = tuple(DEFAULT["models"])


def world_dir() -> Path:
    digest = hashlib.sha256(json.dumps(active_recipe(), sort_keys=True).encode()).hexdigest()[:10]
    home = Path(os.environ.get("UNIOPD_HOME", Path.home() / ".cache" / "uniopd"))
    return home / f"world-{digest}"


@contextmanager
def _locked(root: Path):
    """One builder at a time: parallel sweep workers wait for the first one instead of racing."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _manifest(root: Path) -> dict:
    path = root / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"recipe": active_recipe(), "models": {}}


def _save_manifest(root: Path, manifest: dict) -> None:
    tmp = root / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, root / "manifest.json")


def world_model_path(name: str) -> Path:
    """Directory of a built-in model (`student`, `teacher-math`, ...), building it if missing."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown built-in model 'builtin:{name}'; known: "
                         + ", ".join(f"builtin:{n}" for n in MODEL_NAMES))
    root = world_dir()
    if not (root / name / "config.json").exists():
        build_world([name])
    return root / name


def build_world(names=None, force: bool = False) -> dict:
    """Build the named models (default: all) and what they depend on; returns the manifest."""
    from uniopd.world import pipeline

    root = world_dir()
    with _locked(root):
        if force:
            for entry in root.iterdir():
                if entry.name != ".lock":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        manifest = _manifest(root)
        wanted = list(names or MODEL_NAMES)
        if not (root / "tokenizer" / "tokenizer.json").exists():
            t0 = time.perf_counter()
            pipeline.build_tokenizer(root)
            manifest["tokenizer_seconds"] = round(time.perf_counter() - t0, 2)
            _save_manifest(root, manifest)
        for name in wanted:
            if (root / name / "config.json").exists():
                continue
            log.info("building builtin:%s (first use; cached in %s)", name, root)
            t0 = time.perf_counter()
            record = pipeline.build_model(root, name, active_recipe()["models"][name])
            record["seconds"] = round(time.perf_counter() - t0, 2)
            manifest["models"][name] = record
            _save_manifest(root, manifest)
        return manifest
