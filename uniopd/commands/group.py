"""Run a group of experiment files over several seeds: one paper table, one command.

    uniopd group experiments/ablations --seeds 0 1 2
    uniopd group experiments/ablations/opd.yaml experiments/ablations/uniopd.yaml train.steps=30 \\
        --seeds 0 1 2
    uniopd group experiments/ablations --seeds 0 1 2 --gpus 0,1,2,3          # 4 runs at a time
    uniopd group experiments/ablations --seeds 0 1 2 --gpus 0,1,2,3 --gpus-per-run 2

Every (file, seed) is loaded and planned before the first run starts, so a bad file stops the
group with exit code 2 and nothing written. Run `<name>-s<seed>` goes to `<output.root>/`; a run
whose directory already holds its final checkpoint is skipped, so re-running a group after an
interruption finishes only what is missing.

With --gpus the runs go to a pool of worker processes, one per GPU set, each pinned to its set
(CUDA_VISIBLE_DEVICES, recorded in the run's meta.json) and each running one run at a time as
`python -m uniopd.commands.cli run FILE ... seed=S name=N`; when a run ends its set takes the next one.
A failed run is reported with its exit code and the others go on; the group then exits 1.
Without --gpus the runs go one after the other in this process.
"""

from __future__ import annotations

import glob
import json
import logging
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from uniopd.config import ExperimentConfig, load_experiment
from uniopd.config.doubts import doubts
from uniopd.config.load import ConfigError
from uniopd.launch.placement import worker_env

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
        for field, why in doubts(base):  # once per file: the seeds share its settings
            print(f"uniopd: warning: {path}: {field}: {why}", file=sys.stderr)
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
    """A run of this name finished: `root/name`, or `root/name-2`, ... (RunDir.create's names when
    an earlier attempt left its directory unfinished), so a rerun of the group does not start it
    again next to the one that finished."""
    root, done = Path(cfg.output.root), f"step_{cfg.train.steps:06d}"
    folders = [root / cfg.name, *root.glob(f"{glob.escape(cfg.name)}-[0-9]*")]
    for folder in folders:
        if folder.name != cfg.name and not folder.name.rpartition("-")[2].isdigit():
            continue
        marker = folder / "checkpoints" / "latest"
        if marker.exists() and marker.read_text().strip() == done:
            return True
    return False


def run_group(
    targets: list[str],
    seeds: list[int],
    overrides: list[str],
    gpus: list[list[str]] | None = None,
) -> list[dict]:
    """Every run of the group, planned first; with `gpus` (from uniopd.launch.placement) on a pool of
    pinned worker processes. One result per run; a failed one (only with `gpus`) has `failed`."""
    from uniopd.launch.start import start_run
    from uniopd.setup.plan import make_plan

    runs = plan_group(targets, seeds, overrides)
    # every input check before any compute; a GPU set of K GPUs runs its runs in K processes
    processes = len(gpus[0]) if gpus and len(gpus[0]) > 1 else None
    plans = {cfg.name: make_plan(cfg, processes) for _, cfg in runs}
    if gpus:
        return run_pinned(runs, overrides, gpus)
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


@dataclass
class _Job:
    """Run `i` of the group, running in a worker process on GPU set number `slot`."""

    i: int
    path: Path
    cfg: ExperimentConfig
    slot: int
    proc: subprocess.Popen
    before: set[Path]  # its run directories that existed before it started


def run_pinned(
    runs: list[tuple[Path, ExperimentConfig]], overrides: list[str], gpus: list[list[str]]
) -> list[dict]:
    """The planned runs on one worker process per GPU set, at most one run per set at a time."""
    n, results = len(runs), {}
    pending = []
    for i, (path, cfg) in enumerate(runs, 1):
        if is_complete(cfg):
            print(f"[{i}/{n}] {cfg.name}: already complete, skipped", file=sys.stderr)
            results[i] = {"name": cfg.name, "file": str(path), "skipped": True}
        else:
            pending.append((i, path, cfg))
    free = list(range(len(gpus)))  # the GPU sets no run holds, by number
    running: list[_Job] = []
    try:
        while pending or running:
            while pending and free:
                i, path, cfg = pending.pop(0)
                running.append(_launch(i, n, path, cfg, overrides, free.pop(0), gpus))
            time.sleep(0.5)  # runs take minutes: polling costs nothing and needs no threads
            for job in [j for j in running if j.proc.poll() is not None]:
                running.remove(job)
                free.append(job.slot)
                results[job.i] = _finish(job, n)
    finally:  # interrupted (Ctrl-C): no worker is left training on its own
        for job in running:
            job.proc.terminate()
        for job in running:
            job.proc.wait()
    return [results[i] for i in sorted(results)]


def _launch(
    i: int,
    n: int,
    path: Path,
    cfg: ExperimentConfig,
    overrides: list[str],
    slot: int,
    gpus: list[list[str]],
) -> _Job:
    # the same file and overrides plan_group loaded, so the worker trains the config planned here
    command = [sys.executable, "-m", "uniopd.commands.cli", "run", str(path)]
    command += [*overrides, f"seed={cfg.seed}", f"name={cfg.name}"]
    if len(gpus[slot]) > 1:  # data-parallel over the set, one process per GPU
        command += ["--nproc", str(len(gpus[slot]))]
    before = _run_dirs(cfg)
    print(f"[{i}/{n}] {cfg.name} ({path}) on GPUs {','.join(gpus[slot])}", file=sys.stderr)
    proc = subprocess.Popen(
        command,
        env=worker_env(gpus[slot], len(gpus)),
        # its stdout is the final eval, which does not name the run: _finish prints it named
        stdout=subprocess.DEVNULL,
    )
    return _Job(i, path, cfg, slot, proc, before)


def _finish(job: _Job, n: int) -> dict:
    name, code = job.cfg.name, job.proc.returncode
    if code != 0:
        print(f"[{job.i}/{n}] {name}: FAILED (exit {code}); the other runs go on", file=sys.stderr)
        return {"name": name, "file": str(job.path), "failed": code}
    made = sorted(_run_dirs(job.cfg) - job.before)
    run = made[0] if len(made) == 1 else None
    accs = _final_accs(run) if run else {}
    print(f"[{job.i}/{n}] {name}: {accs}", file=sys.stderr)
    return {"name": name, "file": str(job.path), "run": str(run) if run else None, "final": accs}


def _run_dirs(cfg: ExperimentConfig) -> set[Path]:
    """`<root>/<name>`, and the `<name>-2`, ... RunDir.create falls back to when it is taken."""
    root = Path(cfg.output.root)
    if not root.is_dir():
        return set()
    pattern = re.compile(re.escape(cfg.name) + r"(-[0-9]+)?")
    return {p for p in root.iterdir() if pattern.fullmatch(p.name)}


def _final_accs(run: Path) -> dict:
    """The accuracies of a run's last evaluation (the final one), as the in-process group has."""
    lines = (run / "eval.jsonl").read_text().splitlines() if (run / "eval.jsonl").exists() else []
    final = json.loads(lines[-1]) if lines else {}
    return {d: round(v["acc"], 3) for d, v in final.items() if isinstance(v, dict)}
