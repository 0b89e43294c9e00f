"""Collect run directories into pandas DataFrames."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from uniopd.tracking import method_group


@dataclass
class Runs:
    info: pd.DataFrame            # one row per finished run: run, path, experiment, seed, group, config fields
    metrics: pd.DataFrame         # one row per (run, step) of metrics.jsonl
    evals: pd.DataFrame           # one row per (run, step, domain): acc, pass@k, ...
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run, why it was left out)

    def run_dirs(self) -> list[Path]:
        return [Path(p) for p in self.info["path"]]


def _jsonl(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line torn by a kill: the rest of the file is still good
    return out


def find_run_dirs(roots: list[Path]) -> list[Path]:
    """Run directories under the given folders (any depth), or the folders themselves."""
    found = []
    for root in roots:
        root = Path(root)
        if (root / "config.yaml").exists():
            found.append(root)
        else:
            found += sorted(p.parent for p in root.rglob("config.yaml")
                            if (p.parent / "meta.json").exists() or (p.parent / "metrics.jsonl").exists())
    return found


def load_runs(roots: list[Path | str]) -> Runs:
    infos, metrics, evals, skipped = [], [], [], []
    for path in find_run_dirs([Path(r) for r in roots]):
        name = str(path)
        try:
            from uniopd.config import ExperimentConfig

            raw = yaml.safe_load((path / "config.yaml").read_text())
            cfg = ExperimentConfig.model_validate(raw)
        except Exception as exc:  # noqa: BLE001 - an old or broken config: report, don't crash
            skipped.append((name, f"config.yaml does not load ({type(exc).__name__})"))
            continue
        if not (path / "metrics.jsonl").exists() or not (path / "eval.jsonl").exists():
            skipped.append((name, "no metrics.jsonl / eval.jsonl"))
            continue
        m, e = _jsonl(path / "metrics.jsonl"), _jsonl(path / "eval.jsonl")
        if not e or e[-1].get("step") != cfg.train.steps or not m or m[-1].get("step") != cfg.train.steps:
            last = m[-1]["step"] if m else 0
            skipped.append((name, f"unfinished: logged {last} of {cfg.train.steps} steps"))
            continue
        experiment = re.sub(r"-s\d+$", "", cfg.name)
        infos.append({"run": path.name, "path": str(path), "experiment": experiment, "seed": cfg.seed,
                      "group": method_group(cfg), "method": cfg.method.name,
                      "offline_mode": cfg.balance.offline.mode,
                      "online_ratio": cfg.balance.online.ratio if cfg.balance.online.enabled else None,
                      "calibration": "shift" if cfg.calibration.margin_shift else
                      "mask" if cfg.calibration.margin_mask else "off",
                      "delta": cfg.calibration.delta, "steps": cfg.train.steps,
                      "description": cfg.description, "student": cfg.student,
                      "teachers": json.dumps(cfg.teachers)})
        wall = 0.0
        for rec in m:
            wall += rec.get("time/step", 0.0)
            metrics.append({"run": path.name, "experiment": experiment, "seed": cfg.seed,
                            "wall_s": wall, **rec})
        step_wall = {rec["step"]: w for rec, w in zip(m, pd.Series([r.get("time/step", 0.0) for r in m]).cumsum())}
        for rec in e:
            for domain, entry in rec.items():
                if isinstance(entry, dict):
                    evals.append({"run": path.name, "experiment": experiment, "seed": cfg.seed,
                                  "group": method_group(cfg), "step": rec["step"], "domain": domain,
                                  "wall_s": step_wall.get(rec["step"], 0.0), **entry})
    return Runs(pd.DataFrame(infos), pd.DataFrame(metrics), pd.DataFrame(evals), skipped)
