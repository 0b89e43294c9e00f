"""Rebuild the shipped default world from its recipe on this machine and compare every figure
recorded with it (uniopd/world/prebuilt/prebuilt.json): warm-start loss, the experts' greedy
accuracy before and after their domain GRPO, the greedy held-out quality, and whether the weights
are bit-identical. Minutes on a 2-core CPU; figures are printed, not asserted.

    python benchmarks/world_rebuild.py [--models student teacher-code] [--home DIR] [--json F]

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
    parser.add_argument("--models", nargs="+", help="default: every shipped model")
    parser.add_argument("--home", help="where to build (default: a temporary folder)")
    parser.add_argument("--json", help="write the comparison here")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="uniopd-rebuild-"))
    os.environ["UNIOPD_HOME"] = str(home)
    os.environ.pop("UNIOPD_WORLD_DIALS", None)

    from uniopd.builder import prebuilt
    from uniopd.builder.build import build_world
    from uniopd.world.paths import model_dir, model_key

    shipped = {e["name"]: (k, e) for k, e in prebuilt.index()["models"].items()}
    names = args.models or sorted(shipped)
    start = time.perf_counter()
    manifest = build_world(names, force=True)  # from the recipe, never from the package
    seconds = time.perf_counter() - start
    rows = []
    for name in names:
        key, entry = shipped[name]
        assert key == model_key(name), f"{name}: the shipped model is not the current recipe's"
        built, recorded = manifest["models"][key], entry["record"]
        quality = prebuilt.greedy_quality(model_dir(name), entry["recipe"][name]["domains"])
        same = (
            prebuilt.sha256(model_dir(name) / "model.safetensors")
            == (entry["files"]["model.safetensors"])
        )
        row = {
            "model": name,
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
            f"{name:>13}: build {row['build_s']:.0f} s | sft loss {row['sft_final_loss'][0]} "
            f"(shipped {row['sft_final_loss'][1]}) | greedy {quality} (shipped {entry['quality']})"
            f" | weights {'identical' if same else 'differ'}"
        )
    print(f"rebuilt {len(names)} models in {seconds:.0f} s (wall) into {home}")
    if args.json:
        Path(args.json).write_text(json.dumps({"wall_s": seconds, "models": rows}, indent=1))


if __name__ == "__main__":
    main()
