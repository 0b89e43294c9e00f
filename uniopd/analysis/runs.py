"""Collect runs into pandas DataFrames: from run directories (the ground truth), or read back
from wandb when the user is online (the same rows, rebuilt from the mirrored config and history)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from uniopd.labels import method_group


@dataclass
class Runs:
    info: pd.DataFrame  # one row per finished run: run, path, experiment, seed, group, setting,
    # sweep (study name for a sweep's trial, else None), config fields
    metrics: pd.DataFrame  # one row per (run, step) of metrics.jsonl
    evals: pd.DataFrame  # one row per (run, step, domain): acc, pass@k, ...
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run, why it was left out)


def setting_label(cfg, domains: set[str]) -> str:
    """Who teaches what, e.g. "code<-teacher-code, math<-teacher-math", over the run's domains."""
    if not cfg.method.needs_teacher():
        return "no teacher"
    return ", ".join(
        f"{d}<-{Path(str(r).removeprefix('builtin:')).name}"
        for d, r in sorted(cfg.teachers.items())
        if d in domains
    )


def teacher_accuracy(teachers: dict[str, float], run_teachers: dict, domain: str) -> float | None:
    """A run's teacher accuracy on `domain`: by teacher ("<ref>|<domain>") or by domain alone."""
    ref = run_teachers.get(domain)
    return teachers.get(f"{ref}|{domain}", teachers.get(domain))


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
            found += sorted(
                p.parent
                for p in root.rglob("config.yaml")
                if (p.parent / "meta.json").exists() or (p.parent / "metrics.jsonl").exists()
            )
    return list({p.resolve(): p for p in found}.values())  # a folder given twice counts once


def _info_row(name: str, path: str, cfg, e: list[dict], sweep: str | None) -> dict:
    """A finished run's row of `Runs.info`."""
    return {
        "run": Path(name).name,  # the run directory's name, also the wandb run's
        "path": path,
        "experiment": re.sub(r"-s\d+$", "", cfg.name),
        "seed": cfg.seed,
        "group": method_group(cfg),
        "method": cfg.method.name,
        "offline_mode": cfg.balance.offline.mode,
        "online_ratio": cfg.balance.online.ratio if cfg.balance.online.enabled else None,
        # by the calibrator's name (margin_shift: true and strategy: margin_shift alike); another
        # strategy, e.g. the uniform_bonus control, keeps its name: never read as uncalibrated OPD
        "calibration": {"margin_shift": "shift", "margin_mask": "mask", "none": "off"}.get(
            cfg.calibration.strategy, cfg.calibration.strategy
        ),
        "delta": cfg.calibration.delta,
        "steps": planned_steps(path, cfg.train.steps),
        "offline_s": offline_seconds(path, cfg.balance.offline.mode, cfg.world.difficulty_skew),
        "description": cfg.description,
        "student": cfg.student.model,
        "teachers": json.dumps(cfg.teachers, sort_keys=True),
        "setting": setting_label(cfg, {d for r in e for d, v in r.items() if isinstance(v, dict)}),
        "sweep": sweep,
        "epochs": cfg.train.epochs,  # the regime: 1 = one optimizer step per batch
        # the tiny world's dials (docs/world.md)
        "world_version": cfg.world.version,
        "teacher_flaw": cfg.world.teacher_flaw,
        "deficit": cfg.world.deficit,
        "difficulty_skew": cfg.world.difficulty_skew,
        "latent_difficulty": cfg.world.latent_difficulty,  # version 6's dials
        "horizon": cfg.world.horizon,
    }


def planned_steps(path: str, configured: int) -> int:
    """The steps a run was set to train: meta.json's count, which the trainer writes at start
    (it differs from train.steps when the file gives train.data_epochs), else train.steps."""
    meta = Path(path) / "meta.json"
    if meta.is_file():
        steps = json.loads(meta.read_text()).get("steps")
        if isinstance(steps, int):
            return steps
    return configured


def offline_seconds(path: str, mode: str, skew) -> float:
    """What the run's offline difficulty estimate cost before step 1 (difficulty/estimate.json:
    the sampling's seconds, an earlier run's when the estimate came from the cache, for that is
    the method's cost all the same); 0 for a run without one; NaN when a run that estimated
    recorded no cost (a run from before the record)."""
    if mode in ("none", "prebalanced") and skew is None:
        return 0.0
    record = Path(path) / "difficulty" / "estimate.json"
    if not record.is_file():
        return float("nan")
    cost = json.loads(record.read_text())
    if "sampled_seconds" not in cost:  # nothing sampled: every row gave its pass rate
        return float(cost.get("seconds", float("nan")))
    seconds = cost["sampled_seconds"]  # None: read from a cache that did not record it
    return float("nan") if seconds is None else float(seconds)


_EVAL_COLUMNS = ["run", "experiment", "seed", "group", "step", "domain", "wall_s", "acc"]


class _Collector:
    def __init__(self):
        self.infos, self.metrics, self.evals, self.skipped = [], [], [], []

    def add(
        self,
        name: str,
        path: str,
        config: dict,
        m: list[dict],
        e: list[dict],
        sweep: str | None = None,
    ) -> None:
        """One run: its resolved config, metrics rows and eval rows ({"step", domain: {...}})."""
        from uniopd.config import ExperimentConfig

        try:
            cfg = ExperimentConfig.model_validate(
                {k: v for k, v in config.items() if not k.startswith("_")}
            )
        except Exception as exc:  # noqa: BLE001 - an old or broken config: report, don't crash
            self.skipped.append((name, f"config does not load ({type(exc).__name__})"))
            return
        steps = planned_steps(path, cfg.train.steps)
        evaluated_last = bool(e) and e[-1].get("step") == steps
        last = m[-1]["step"] if m else 0
        if last != steps:
            self.skipped.append((name, f"unfinished: logged {last} of {steps} steps"))
            return
        if cfg.eval.after and not evaluated_last:  # stopped during its final evaluation
            self.skipped.append((name, f"unfinished: no final evaluation at step {steps}"))
            return
        self.infos.append(_info_row(name, path, cfg, e, sweep))
        self._add_history(self.infos[-1], cfg, m, e)

    def _add_history(self, info: dict, cfg, m: list[dict], e: list[dict]) -> None:
        """The run's metrics and eval rows, each with its wall-clock time since the start: the
        offline estimate first (a cost of the method, before step 1), then each step's phases."""
        run, experiment, group = info["run"], info["experiment"], info["group"]
        offline = info["offline_s"] if info["offline_s"] == info["offline_s"] else 0.0
        wall, at = offline, {0: offline}
        for rec in m:
            wall += rec.get("time/step", 0.0)
            at[rec["step"]] = wall
            self.metrics.append(
                {"run": run, "experiment": experiment, "seed": cfg.seed, "wall_s": wall, **rec}
            )
        for rec in e:
            for domain, entry in rec.items():
                if isinstance(entry, dict):
                    self.evals.append(
                        {
                            "run": run,
                            "experiment": experiment,
                            "seed": cfg.seed,
                            "group": group,
                            "step": rec["step"],
                            "domain": domain,
                            "wall_s": at.get(rec["step"], 0.0),
                            **entry,
                        }
                    )

    def runs(self) -> Runs:
        # runs that never evaluated still give the eval table its columns: a figure then finds
        # no rows to draw, not a KeyError
        evals = pd.DataFrame(self.evals) if self.evals else pd.DataFrame(columns=_EVAL_COLUMNS)
        return Runs(pd.DataFrame(self.infos), pd.DataFrame(self.metrics), evals, self.skipped)


def load_runs(roots: list[Path | str]) -> Runs:
    """The finished runs under `roots`: run directories, folders of them, or a study's compact
    data file (`.parquet`, uniopd/analysis/compact.py)."""
    c = _Collector()
    compact = [Path(r) for r in roots if Path(r).suffix == ".parquet"]
    roots = [r for r in roots if Path(r).suffix != ".parquet"]
    for path in find_run_dirs([Path(r) for r in roots]):
        if not (path / "metrics.jsonl").exists():  # eval.jsonl: only if the run evaluated
            c.skipped.append((str(path), "no metrics.jsonl"))
            continue
        try:
            config = yaml.safe_load((path / "config.yaml").read_text())
        except yaml.YAMLError:
            c.skipped.append((str(path), "config.yaml is not YAML"))
            continue
        if (path / "pruned.txt").exists():
            c.skipped.append((str(path), "pruned by its sweep's pruner"))
            continue
        trial = path / "trial.json"  # a sweep's trial: its study's name
        sweep = json.loads(trial.read_text()).get("study") if trial.exists() else None
        c.add(
            str(path),
            str(path),
            config,
            _jsonl(path / "metrics.jsonl"),
            _jsonl(path / "eval.jsonl") if (path / "eval.jsonl").exists() else [],
            sweep,
        )
    return combine(c.runs(), *[_read_compact(p, c.skipped) for p in compact])


def _read_compact(path: Path, skipped: list[tuple[str, str]]) -> Runs:
    """A compact data file's runs; one that cannot be read is left out, saying why."""
    from uniopd.analysis.compact_format import read_frames

    try:
        return Runs(*read_frames(path))
    except Exception as exc:  # noqa: BLE001 - not parquet, or not ours: left out with the reason
        skipped.append((str(path), f"not a study's compact data ({type(exc).__name__}: {exc})"))
        return Runs(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())


def runs_from_history(records: list[tuple]) -> Runs:
    """Runs from mirrored (name, config, history rows[, sweep[, path]]), as the wandb mirror logs
    them: per-step metrics rows, and eval rows whose keys are eval/<domain>/<key>. `sweep` is the
    run's job type when it is a sweep's trial (the mirror logs `train` otherwise)."""
    c = _Collector()
    for name, config, history, *rest in records:
        sweep = rest[0] if rest and rest[0] != "train" else None
        path = rest[1] if len(rest) > 1 else f"wandb:{name}"  # a folder with the mirrored files
        m, e = [], {}
        for row in history:
            step = row.get("_step")
            if "loss" in row:
                m.append(
                    {
                        "step": step,
                        **{
                            k: v
                            for k, v in row.items()
                            if not k.startswith(("_", "eval/", "trainer/"))
                        },
                    }
                )
            for key, value in row.items():
                parts = key.split("/")
                # eval/samples is the mirror's table of held-out samples, not a domain
                if (
                    len(parts) == 3
                    and parts[0] == "eval"
                    and parts[1] != "samples"
                    and isinstance(value, (int, float))
                ):
                    e.setdefault(step, {"step": step}).setdefault(parts[1], {})[parts[2]] = value
        c.add(
            name, path, config, sorted(m, key=lambda r: r["step"]), [e[s] for s in sorted(e)], sweep
        )
    return c.runs()


class WandbSourceError(RuntimeError):
    """A wandb project that cannot be read (no login, no such project, no network)."""


def project_path(text: str) -> tuple[str, str]:
    """ "entity/project" as its two parts; anything else is refused with what was given."""
    entity, slash, project = text.partition("/")
    if not slash or not entity or not project or "/" in project:
        raise WandbSourceError(f"{text!r} is not ENTITY/PROJECT (e.g. my-team/uniopd)")
    return entity, project


def load_wandb(path: str) -> Runs:
    """Runs of a wandb project ("entity/project"), read back online with the public API. The
    files the mirror saves beside the scalars (tracking.MIRRORED_FILES) are downloaded to
    $UNIOPD_HOME/wandb/<entity>/<project>/<run id>/<run name>/, which becomes the run's path
    (its last part the run's name, as a run directory's is)."""
    import wandb

    from uniopd.home import uniopd_home
    from uniopd.tracking.mirrors import MIRRORED_FILES

    entity, project = project_path(path)
    records = []
    try:
        for run in wandb.Api().runs(f"{entity}/{project}"):
            folder = uniopd_home() / "wandb" / entity / project / run.id / run.name
            folder.mkdir(parents=True, exist_ok=True)
            for f in run.files(names=list(MIRRORED_FILES)):
                f.download(root=str(folder), replace=True)
            history = list(run.scan_history())
            records.append((run.name, dict(run.config), history, run.job_type, str(folder)))
    except Exception as exc:  # noqa: BLE001 - wandb's errors vary by cause; each is named here
        raise WandbSourceError(f"wandb project {path}: {type(exc).__name__}: {exc}") from exc
    return runs_from_history(records)


def combine(*parts: Runs) -> Runs:
    """Several sources as one; a run name seen twice (a local run and its wandb mirror) is kept
    once, the first, and the other is listed as left out."""
    infos, metrics, evals, skipped, seen = [], [], [], [], set()
    for runs in parts:
        skipped += runs.skipped
        if runs.info.empty:
            continue
        twice = runs.info.run.isin(seen)
        for _, row in runs.info[twice].iterrows():
            skipped.append((row.path, f"run {row.run} given twice; the first source kept"))
        keep = set(runs.info.run[~twice])
        seen |= keep
        infos.append(runs.info[~twice])
        metrics += [runs.metrics[runs.metrics.run.isin(keep)]] if len(runs.metrics) else []
        evals += [runs.evals[runs.evals.run.isin(keep)]] if len(runs.evals) else []
    if not evals:  # the eval table keeps its columns when no run evaluated
        evals = [pd.DataFrame(columns=_EVAL_COLUMNS)]
    cat = lambda frames: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()  # noqa: E731
    return Runs(cat(infos), cat(metrics), cat(evals), skipped)


def without_sweeps(runs: Runs) -> Runs:
    """The runs that are not sweep trials (tables compare experiments; sweeps have their own plots)."""
    keep = set(runs.info[runs.info.sweep.isna()].run) if len(runs.info) else set()
    pick = lambda df: df[df.run.isin(keep)] if len(df) else df  # noqa: E731
    return Runs(
        runs.info[runs.info.run.isin(keep)], pick(runs.metrics), pick(runs.evals), runs.skipped
    )
