"""The default world, shipped inside the package: the quickstart's models without the minutes of
training, and the same weights on every machine.

    uniopd/world/prebuilt/prebuilt.json        per model folder: its recipe, file checksums,
                                               recorded quality figures and warm-start curve head
    uniopd/world/prebuilt/<name>-<hash>/       the model folder as `uniopd world build` writes it

A `builtin:` model whose folder key (world/paths.model_key: its recipe and the shared settings) is
shipped is copied from here, after its checksums are verified, instead of being trained; any
other (another dial, another version, `uniopd world build --force`) is built from its recipe.
`uniopd world ship` (for maintainers) writes this folder from the built default world.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from uniopd.world.paths import model_dir, model_key
from uniopd.world.recipe import active_recipe

log = logging.getLogger(__name__)

PREBUILT = Path(__file__).parent / "prebuilt"
QUALITY_PROMPTS = 100  # held-out prompts per domain of the recorded greedy accuracy


class PrebuiltError(RuntimeError):
    """A shipped file is missing or not the one recorded (a damaged install)."""


def index(folder: Path | None = None) -> dict:
    path = (folder or PREBUILT) / "prebuilt.json"
    return json.loads(path.read_text()) if path.exists() else {"models": {}}


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify(key: str, entry: dict, folder: Path | None = None) -> Path:
    """The shipped folder of `key`, every file checked against its recorded checksum."""
    src = (folder or PREBUILT) / key
    for name, digest in entry["files"].items():
        path = src / name
        if not path.exists():
            raise PrebuiltError(f"shipped model {key}: {path} is missing; reinstall uniopd")
        if sha256(path) != digest:
            raise PrebuiltError(
                f"shipped model {key}: {path} does not match its recorded checksum (a damaged "
                "install); reinstall uniopd, or build it from its recipe with "
                "`uniopd world build --force`"
            )
    return src


def install(name: str, folder: Path | None = None) -> dict | None:
    """Copy built-in model `name` of the active world from the package, if it is shipped; its
    manifest record, or None when it has to be built. The copy appears whole or not at all."""
    key = model_key(name)
    entry = index(folder)["models"].get(key)
    if entry is None:
        return None
    src = verify(key, entry, folder)
    out = model_dir(name)
    tmp = out.with_name(f".{out.name}.copy")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("builtin:%s: the shipped model (no training needed)", name)
    return {**entry["record"], "source": "prebuilt", "quality": entry["quality"]}


def greedy_quality(path: Path, domains: list[str]) -> dict[str, float]:
    """Greedy held-out accuracy of the model in `path` on the first QUALITY_PROMPTS test prompts
    of each of its domains (what `uniopd world info` and the shipped record report)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from uniopd.loop.evaluate import evaluate
    from uniopd.tasks.builtin import builtin_problems
    from uniopd.verifiers import get_verifier

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    out = {}
    for domain in domains:
        problems = builtin_problems(domain, "test")[:QUALITY_PROMPTS]
        summary, _ = evaluate(
            model,
            tokenizer,
            problems,
            {domain: get_verifier(domain)},
            n_samples=1,
            pass_k=[1],
            temperature=0.0,
            top_p=1.0,
            top_k=0,
            max_new_tokens=64,
            seed=0,
            progress=False,
        )
        out[domain] = round(summary[domain]["acc"], 4)
    return out


def ship(names: list[str], manifest: dict, folder: Path | None = None) -> dict:
    """Copy the built models `names` of the active world into the package folder with their
    checksums, recorded quality and warm-start curve head; returns the new index."""
    from transformers import AutoTokenizer

    from uniopd.builder.pipeline import CURVE_HEAD_STEPS, warm_start_curve

    folder = folder or PREBUILT
    folder.mkdir(parents=True, exist_ok=True)
    shipped = index(folder)
    recipe = active_recipe()
    for name in names:
        key, src = model_key(name), model_dir(name)
        if not (src / "config.json").exists():
            raise PrebuiltError(f"builtin:{name} is not built: `uniopd world build` first")
        record = dict(manifest["models"][key])
        if len(record.get("sft_loss_head", [])) < CURVE_HEAD_STEPS:  # built before it was kept
            tok = AutoTokenizer.from_pretrained(src)
            record["sft_loss_head"] = [round(x, 6) for x in warm_start_curve(name, recipe, tok)]
        dst = folder / key
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        shipped["models"][key] = {
            "name": name,
            "recipe": {"shared": {k: v for k, v in recipe.items() if k != "models"}},
            "files": {f.name: sha256(f) for f in sorted(dst.iterdir()) if f.is_file()},
            "record": record,
            "quality": greedy_quality(dst, recipe["models"][name]["domains"]),
        }
        shipped["models"][key]["recipe"][name] = recipe["models"][name]
    (folder / "prebuilt.json").write_text(json.dumps(shipped, indent=1, sort_keys=True) + "\n")
    return shipped
