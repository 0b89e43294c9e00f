"""Rebuild shipped world models from their recipe on this machine and compare every figure
recorded with them (the version's shelf, uniopd/builder/prebuilt/[v6/]prebuilt.json): warm-start
loss, the experts' greedy accuracy before and after their domain GRPO, the greedy held-out
quality, and whether the weights are bit-identical. Each model is built in its own world (version
6's shelf holds a student per dial setting). Minutes a model on a 2-core CPU; figures are printed,
not asserted.

    python benchmarks/world_rebuild.py [--models student teacher-code] [--home DIR] [--json F]
    python benchmarks/world_rebuild.py --version 6 --models teacher-code student-3cbbf68e75

The rebuild goes into a temporary $UNIOPD_HOME (or --home), never into the user's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        help="names (every shelf model of that name) or shelf keys such as student-3cbbf68e75 "
        "(default: every model on the shelf)",
    )
    parser.add_argument("--version", type=int, default=5, help="the shelf's world version")
    parser.add_argument("--home", help="where to build (default: a temporary folder)")
    parser.add_argument("--json", help="write the comparison here")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="uniopd-rebuild-"))
    os.environ["UNIOPD_HOME"] = str(home)
    os.environ.pop("UNIOPD_WORLD_DIALS", None)

    from uniopd.builder import prebuilt
    from uniopd.builder.build import build_world
    from uniopd.world.paths import model_dir, model_key
    from uniopd.world.recipe import Dials, select_world

    shelf = prebuilt.index(prebuilt.shelf(args.version))["models"]
    wanted = set(args.models or [])
    chosen = sorted(k for k, e in shelf.items() if not wanted or {k, e["name"]} & wanted)
    if not chosen or wanted - {x for k in chosen for x in (k, shelf[k]["name"])}:
        known = ", ".join(sorted(shelf))
        raise SystemExit(
            f"--models {sorted(wanted)}: not all on version {args.version}'s shelf ({known})"
        )
    start = time.perf_counter()
    rows = []
    for key in chosen:
        entry = shelf[key]
        name, world = entry["name"], entry.get("world", {"version": 5, "dials": {}})
        select_world(world["version"], Dials(**world["dials"]))
        assert key == model_key(name), f"{key}: the shipped model is not the current recipe's"
        manifest = build_world([name], force=True)  # from the recipe, never from the package
        built, recorded = manifest["models"][key], entry["record"]
        quality = prebuilt.greedy_quality(model_dir(name), entry["recipe"][name]["domains"])
        same = (
            prebuilt.sha256(model_dir(name) / "model.safetensors")
            == (entry["files"]["model.safetensors"])
        )
        row = {
            "model": key,
            "build_s": built["seconds"],
            "sft_final_loss": [built["sft_final_loss"], recorded["sft_final_loss"]],
            "grpo_greedy": [
                built.get("grpo", {}).get("greedy_accuracy"),
                recorded.get("grpo", {}).get("greedy_accuracy"),
            ],
            "quality": [quality, entry["quality"]],
            "weights_identical": same,
        }
        rows.append(row)
        print(
            f"{key:>24}: build {row['build_s']:.0f} s | sft loss {row['sft_final_loss'][0]} "
            f"(shipped {row['sft_final_loss'][1]}) | greedy {quality} (shipped {entry['quality']})"
            f" | weights {'identical' if same else 'differ'}"
        )
    seconds = time.perf_counter() - start
    print(f"rebuilt {len(chosen)} models in {seconds:.0f} s (wall) into {home}")
    if args.json:
        Path(args.json).write_text(json.dumps({"wall_s": seconds, "models": rows}, indent=1))


if __name__ == "__main__":
    main()
