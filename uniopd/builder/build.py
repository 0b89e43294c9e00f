"""Build (or find cached) the tiny world: tokenizer, two domain experts and a weaker student.

The experts are made the way the paper makes them: a supervised warm start on the domain, then
GRPO on the domain through the project's own training loop. The student is smaller and gets a
short warm start on both domains, so it starts well below the experts with room to learn.

    uniopd world build            # build what is missing (also happens on first use)
    uniopd world build --force    # rebuild from scratch
    uniopd world info             # where it is and what each model scores

Everything lands in $UNIOPD_HOME (default ~/.cache/uniopd), each model in a folder named by a hash
of its recipe (world/paths.py), so changing the recipe builds new models instead of mixing old and
new ones, and worlds that differ in one dial share the models it does not touch.
"""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from uniopd.world.paths import MODEL_NAMES, check_name, model_dir, model_key, world_dir
from uniopd.world.recipe import active_recipe

log = logging.getLogger(__name__)


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
    """What was built in this world folder: its shared settings and a record per model folder."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    if "recipe" in manifest or "models" not in manifest:  # a world made before per-model folders
        manifest = {"models": {}}
    return manifest


def _save_manifest(root: Path, manifest: dict) -> None:
    tmp = root / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, root / "manifest.json")


def _build_one(root: str, name: str, recipe: dict, progress) -> dict:
    """One model, in a worker process with one torch thread: the floating-point result then does
    not depend on how many cores the machine has or how many models build beside it."""
    import torch

    from uniopd.builder import pipeline

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    record = pipeline.build_model(Path(root), name, recipe, on_step=lambda: progress.put(name))
    record["seconds"] = round(time.perf_counter() - t0, 2)
    return record


def _build_models(root: Path, names: list[str], manifest: dict) -> None:
    """Build `names` side by side, one single-threaded process each, one more at once than there
    are cores (on 2 cores the three models of a first run share both cores to the end, instead of
    one core idling while the longest build finishes), with one progress bar per model. Each model
    enters the manifest as soon as it is done, so a failure keeps the models already built."""
    full = active_recipe()
    recipe = full["models"]
    names = sorted(names, key=lambda n: -recipe[n]["sft_steps"])  # longest first
    context = multiprocessing.get_context("spawn")  # no forked torch state in the workers
    workers = min(len(names), (os.cpu_count() or 1) + 1)
    log.info(
        "building %s (first use; cached in %s)", ", ".join(f"builtin:{n}" for n in names), root
    )
    bars = {
        n: tqdm(
            total=recipe[n]["sft_steps"] + recipe[n]["grpo_steps"],
            position=i,
            desc=f"build builtin:{n}",
            dynamic_ncols=True,
        )
        for i, n in enumerate(names)
    }
    failure = None
    with context.Manager() as sync, ProcessPoolExecutor(workers, mp_context=context) as pool:
        progress = sync.Queue()
        pending = {pool.submit(_build_one, str(root), n, full, progress): n for n in names}
        while pending:
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while not progress.empty():
                bars[progress.get()].update(1)
            for future in done:
                name = pending.pop(future)
                try:
                    record = manifest["models"][model_key(name, full)] = future.result()
                except Exception as error:  # keep the other builds going; report after
                    failure = failure or (name, error)
                    continue
                _save_manifest(root, manifest)
                bars[name].close()
                log.info("built builtin:%s in %.0f s", name, record["seconds"])
    for bar in bars.values():
        bar.close()
    if failure:
        raise RuntimeError(f"building builtin:{failure[0]} failed: {failure[1]}") from failure[1]


def with_inits(names) -> list[str]:
    """The named models and those they start from (a visual model's `init`), inits first."""
    models = active_recipe()["models"]
    out: list[str] = []

    def add(name: str) -> None:
        init = models.get(name, {}).get("init")
        if init:
            add(init)
        if name not in out:
            out.append(name)

    for name in names:
        add(name)
    return out


def build_missing(names) -> None:
    """Build those of the named built-in models that are not built yet, side by side."""
    for name in names:
        check_name(name)
    missing = sorted({n for n in names if not (model_dir(n) / "config.json").exists()})
    if missing:
        build_world(missing)


def build_world(names=None, force: bool = False) -> dict:
    """Build the named models (default: all) of the active world and what they depend on;
    returns the manifest. `force` rebuilds them (and the tokenizer) from scratch; models of other
    worlds in the same folder are left alone."""
    from uniopd.builder import pipeline, prebuilt

    root = world_dir()
    with _locked(root):
        manifest = _manifest(root)
        wanted = list(names or MODEL_NAMES)
        if force:
            for name in wanted:
                shutil.rmtree(model_dir(name), ignore_errors=True)
                manifest["models"].pop(model_key(name), None)
            shutil.rmtree(root / "tokenizer", ignore_errors=True)
        wanted = with_inits(wanted)  # what they start from, when it is not built yet
        missing = [n for n in wanted if not (model_dir(n) / "config.json").exists()]
        if not force:  # the shipped worlds' models come with the package (builder/prebuilt.py)
            if missing and not (root / "tokenizer" / "tokenizer.json").exists():
                prebuilt.install_tokenizer()
            for name in list(missing):
                record = prebuilt.install(name)
                if record is not None:
                    manifest["models"][model_key(name)] = record
                    _save_manifest(root, manifest)
                    missing.remove(name)
        if missing and not (root / "tokenizer" / "tokenizer.json").exists():
            t0 = time.perf_counter()
            pipeline.build_tokenizer(root)
            manifest["tokenizer_seconds"] = round(time.perf_counter() - t0, 2)
            _save_manifest(root, manifest)
        models = active_recipe()["models"]
        while missing:  # in waves: a model is built after the model it starts from
            wave = [n for n in missing if models[n].get("init") not in missing]
            _build_models(root, wave, manifest)
            missing = [n for n in missing if n not in wave]
        return manifest
