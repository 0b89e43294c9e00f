"""Run a group of experiment files over several seeds: one paper table, one command.

    uniopd group experiments/ablations --seeds 0 1 2
    uniopd group experiments/ablations/opd.yaml experiments/ablations/uniopd.yaml --seeds 0 1 2 \\
        --set train.steps=30

Every (file, seed) is loaded and planned before the first run starts, so a bad file stops the
group with exit code 2 and nothing written. Run `<name>-s<seed>` goes to `<output.root>/`; a run
whose directory already holds its final checkpoint is skipped, so re-running a group after an
interruption finishes only what is missing.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from uniopd.config import ExperimentConfig, load_experiment
from uniopd.config.load import ConfigError

log = logging.getLogger(__name__)


def expand(targets: list[str]) -> list[Path]:
    """Files as given; a folder stands for its experiment files (not the `_` partial bases)."""
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.y*ml") if not p.name.startswith("_"))
            if not found:
                raise ConfigError(str(path), "-", "folder holds no experiment files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(str(path), "-", "no such experiment file or folder")
    return files


def plan_group(
    targets: list[str], seeds: list[int], overrides: list[str]
) -> list[tuple[Path, ExperimentConfig]]:
    runs = []
    for path in expand(targets):
        base = load_experiment(path, overrides)
        for seed in seeds:
            runs.append(
                (
                    path,
                    load_experiment(
                        path, [*overrides, f"seed={seed}", f"name={base.name}-s{seed}"]
                    ),
                )
            )
    names = [cfg.name for _, cfg in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            ", ".join(str(p) for p, c in runs if c.name in dupes),
            "name",
            f"several runs of the group would be named {dupes}: give each file its own name",
        )
    return runs


def is_complete(cfg: ExperimentConfig) -> bool:
    marker = Path(cfg.output.root) / cfg.name / "checkpoints" / "latest"
    return marker.exists() and marker.read_text().strip() == f"step_{cfg.train.steps:06d}"


def run_group(targets: list[str], seeds: list[int], overrides: list[str]) -> list[dict]:
    from uniopd.launch import start_run
    from uniopd.plan import make_plan

    runs = plan_group(targets, seeds, overrides)
    plans = {cfg.name: make_plan(cfg) for _, cfg in runs}  # every input check before any compute
    results = []
    for i, (path, cfg) in enumerate(runs, 1):
        if is_complete(cfg):
            print(f"[{i}/{len(runs)}] {cfg.name}: already complete, skipped", file=sys.stderr)
            results.append({"name": cfg.name, "file": str(path), "skipped": True})
            continue
        print(f"[{i}/{len(runs)}] {cfg.name} ({path})", file=sys.stderr)
        run, final = start_run(cfg, plan=plans[cfg.name])
        accs = {d: round(v["acc"], 3) for d, v in final.items() if isinstance(v, dict)}
        print(f"[{i}/{len(runs)}] {cfg.name}: {accs}", file=sys.stderr)
        results.append({"name": cfg.name, "file": str(path), "run": str(run.path), "final": accs})
    return results
