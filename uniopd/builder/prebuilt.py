"""The worlds shipped inside the package: the quickstart's models without the minutes of
training, and the same weights on every machine.

    uniopd/builder/prebuilt/                   the default world (version 5)
        prebuilt.json                          per model folder: its recipe and world (version,
                                               dials), file checksums, recorded quality figures
                                               and warm-start curve head; the tokenizer's checksums
        <name>-<hash>/                         the model folder as `uniopd world build` writes it
        tokenizer/                             the world's tokenizer, when it ships
    uniopd/builder/prebuilt/v6/                version 6's shelf, laid out the same way

A `builtin:` model whose folder key (world/paths.model_key: its recipe and the shared settings) is
shipped on its version's shelf is copied from there, after its checksums are verified, instead
of being trained; any other (another dial, `uniopd world build --force`) is built from its
recipe, with the shipped tokenizer when its world's ships one (the models beside it were trained
on that one). `uniopd world ship` (for maintainers) writes a shelf from the built models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from uniopd.world.paths import model_dir, model_key, world_dir
from uniopd.world.recipe import Dials, active_recipe, select_world, selected_world

log = logging.getLogger(__name__)

PREBUILT = Path(__file__).parent / "prebuilt"
QUALITY_PROMPTS = 100  # held-out prompts per domain of the recorded greedy accuracy
# the versions with a shelf; version 5 shipped alone, in the folder's root, before the others
SHIPPED_VERSIONS = (5, 6)


class PrebuiltError(RuntimeError):
    """A shipped file is missing or not the one recorded (a damaged install)."""


def shelf(version: int | None = None) -> Path:
    """The package folder of a world version's shipped models (default: the active world's)."""
    version = version or active_recipe()["version"]
    return PREBUILT if version == 5 else PREBUILT / f"v{version}"


def shippable(version: int, dials: Dials) -> str | None:
    """Why world `version` with `dials` cannot ship, or None. Version 5 ships its default world
    only (its dial worlds build in minutes on demand); version 6 ships any dial's models."""
    if (version == 5 and dials.is_default()) or version in SHIPPED_VERSIONS[1:]:
        return None
    return (
        "only the default world of version 5 and the worlds of version "
        f"{', '.join(map(str, SHIPPED_VERSIONS[1:]))} ship (asked: version {version}, {dials})"
    )


def index(folder: Path | None = None) -> dict:
    """The shelf's index (default: the active world's shelf)."""
    path = (folder or shelf()) / "prebuilt.json"
    return json.loads(path.read_text()) if path.exists() else {"models": {}}


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _verified(src: Path, files: dict, what: str) -> Path:
    """`src`, every file of `files` (name -> checksum) checked against its recorded checksum."""
    for name, digest in files.items():
        path = src / name
        if not path.exists():
            raise PrebuiltError(f"shipped {what}: {path} is missing; reinstall uniopd")
        if sha256(path) != digest:
            raise PrebuiltError(
                f"shipped {what}: {path} does not match its recorded checksum (a damaged "
                "install); reinstall uniopd, or build it from its recipe with "
                "`uniopd world build --force`"
            )
    return src


def verify(key: str, entry: dict, folder: Path | None = None) -> Path:
    """The shipped folder of `key`, every file checked against its recorded checksum."""
    return _verified((folder or shelf()) / key, entry["files"], f"model {key}")


def _copy_whole(src: Path, out: Path) -> None:
    """`src` copied to `out`, which appears whole or not at all."""
    tmp = out.with_name(f".{out.name}.copy")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def install(name: str, folder: Path | None = None) -> dict | None:
    """Copy built-in model `name` of the active world from the package, if it is shipped; its
    manifest record, or None when it has to be built. The copy appears whole or not at all."""
    key = model_key(name)
    entry = index(folder)["models"].get(key)
    if entry is None:
        return None
    _copy_whole(verify(key, entry, folder), model_dir(name))
    log.info("builtin:%s: the shipped model (no training needed)", name)
    return {**entry["record"], "source": "prebuilt", "quality": entry["quality"]}


def install_tokenizer(folder: Path | None = None) -> bool:
    """Copy the active world's tokenizer from the package into its world folder, if it ships;
    whether it did. A model built beside shipped ones then reads the tokenizer they were trained
    with (a retrained one could differ in a merge with another version of `tokenizers`)."""
    entry = index(folder).get("tokenizer")
    root = world_dir()
    if entry is None or entry["world"] != root.name:  # another world's (a changed recipe)
        return False
    src = _verified((folder or shelf()) / "tokenizer", entry["files"], f"{root.name} tokenizer")
    root.mkdir(parents=True, exist_ok=True)
    _copy_whole(src, root / "tokenizer")
    log.info("%s: the shipped tokenizer", root.name)
    return True


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


def _checksums(folder: Path) -> dict[str, str]:
    return {f.name: sha256(f) for f in sorted(folder.iterdir()) if f.is_file()}


def ship(names: list[str], manifest: dict, folder: Path | None = None) -> dict:
    """Copy the built models `names` of the active world, and its tokenizer when built, onto its
    version's shelf with their checksums, recorded quality, world (version and dials) and
    warm-start curve head; returns the new index."""
    from transformers import AutoTokenizer

    from uniopd.builder.pipeline import CURVE_HEAD_STEPS, warm_start_curve

    version, dials = selected_world()
    problem = shippable(version, dials)
    if problem:
        raise PrebuiltError(problem)
    select_world(version, dials)  # quality on the world's own held-out data, not a horizon's
    folder = folder or shelf()
    folder.mkdir(parents=True, exist_ok=True)
    shipped = index(folder)
    recipe = active_recipe()
    tokenizer = world_dir() / "tokenizer"
    if (tokenizer / "tokenizer.json").exists():
        shutil.rmtree(folder / "tokenizer", ignore_errors=True)
        shutil.copytree(tokenizer, folder / "tokenizer")
        files = _checksums(folder / "tokenizer")
        shipped["tokenizer"] = {"world": world_dir().name, "files": files}
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
            "world": {"version": version, "dials": asdict(dials)},
            "files": _checksums(dst),
            "record": record,
            "quality": greedy_quality(dst, recipe["models"][name]["domains"]),
        }
        shipped["models"][key]["recipe"][name] = recipe["models"][name]
    (folder / "prebuilt.json").write_text(json.dumps(shipped, indent=1, sort_keys=True) + "\n")
    return shipped
