"""The mirrors of a run directory: wandb, and TensorBoard (`tracking.tensorboard`). The run
directory stays the ground truth; a mirror only copies what it records (config, per-step metrics,
evaluations, for wandb a table of held-out samples), with runs grouped by method and tagged with
every Uni-OPD toggle so a workspace compares them directly.

Mode (experiment field `tracking.wandb`): `auto` (the default: online when logged in, offline
otherwise, with one line saying which), `online` when asked for and logged in (otherwise offline,
with a warning), `offline` (files under runs/<name>/wandb, `wandb sync` them later), `disabled`.
The WANDB_MODE environment variable wins, so tests run with WANDB_MODE=disabled.

A mirror that fails (a full disk under runs/<name>/wandb or tensorboard, a lost connection) is
turned off with one warning and the run goes on: everything it would have shown is in the run
directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from uniopd.labels import method_group, toggle_tags

if TYPE_CHECKING:
    from uniopd.config.schema import ExperimentConfig

log = logging.getLogger(__name__)

# the modes wandb.init takes
WandbMode = Literal["online", "offline", "disabled", "shared"]
# tracking.wandb or WANDB_MODE -> the mode wandb.init gets ("run" and "dryrun" are wandb's old
# names for online and offline)
_PASSED_ON: dict[str, WandbMode] = {
    "online": "online",
    "offline": "offline",
    "shared": "shared",
    "run": "online",
    "dryrun": "offline",
}


class Tracker(Protocol):
    """A mirror of the run directory: what the run directory copies to it as it logs."""

    def log_metrics(self, record: dict) -> None: ...
    def log_eval(self, step: int, summary: dict, samples: list[dict]) -> None: ...
    def finish(self) -> None: ...


class RunFolder(Protocol):
    """What a mirror reads of the run directory (uniopd.run_dir.RunDir, a layer above this one)."""

    path: Path

    def read_meta(self) -> dict: ...
    def update_meta(self, fields: dict) -> None: ...


class NullTracker:
    """Tracking off: every call is a no-op, so the loop never branches on it."""

    def log_metrics(self, record: dict) -> None: ...
    def log_eval(self, step: int, summary: dict, samples: list[dict]) -> None: ...
    def finish(self) -> None: ...


# files of the run directory that figures read beyond the scalars (difficulty histograms, the
# order-consistency heatmap): saved with the wandb run, so `uniopd figures --wandb` draws them too
MIRRORED_FILES = ("difficulty/histograms.json", "difficulty/estimate.json", "pairs.jsonl")


class WandbTracker:
    def __init__(self, cfg: ExperimentConfig, run_dir: RunFolder, mode: WandbMode):
        import wandb

        from uniopd.config.load import resolved_dict

        meta = run_dir.read_meta()
        run_id = meta.get("wandb_id") or uuid.uuid4().hex[:12]  # kept, so a resume continues it
        trial = run_dir.path / "trial.json"  # a sweep's trial: its sweep is its job type
        job_type = json.loads(trial.read_text()).get("study") if trial.exists() else "train"
        self.run = wandb.init(
            job_type=job_type,
            project=cfg.tracking.project,
            entity=cfg.tracking.entity,
            id=run_id,
            name=run_dir.path.name,
            group=method_group(cfg),
            tags=toggle_tags(cfg),
            config=resolved_dict(cfg),
            dir=str(run_dir.path),
            mode=mode,
            resume="allow",
            settings=wandb.Settings(silent=True),
        )
        run_dir.update_meta({"wandb_id": run_id, "wandb_mode": mode})
        # evaluations plot against the training step, whatever else was logged at that step
        self.run.define_metric("trainer/step")
        self.run.define_metric("eval/*", step_metric="trainer/step")
        self._wandb, self.path = wandb, run_dir.path

    def log_metrics(self, record: dict) -> None:
        values = {k: v for k, v in record.items() if k != "step" and _number(v)}
        self.run.log(values, step=record["step"])

    def log_eval(self, step: int, summary: dict, samples: list[dict]) -> None:
        values = {
            f"eval/{d}/{k}": v
            for d, entry in summary.items()
            if isinstance(entry, dict)
            for k, v in entry.items()
            if _number(v)
        }
        columns: list[str | int] = [
            "prompt_id",
            "domain",
            "sample",
            "reward",
            "length",
            "completion",
        ]
        values["trainer/step"] = step
        values["eval/samples"] = self._wandb.Table(
            columns=columns, data=[[s.get(c) for c in columns] for s in samples]
        )
        self.run.log(values, step=step)

    def finish(self) -> None:
        for name in MIRRORED_FILES:
            # copied into the run's files folder, which wandb uploads at the end (run.save would
            # link them and print a warning about later changes: these are final)
            if (self.path / name).exists():
                target = Path(self.run.dir) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.path / name, target)
        self.run.finish()


class TensorBoardTracker:
    """Events in runs/<name>/tensorboard/, the tags `uniopd board` gives the same lines
    (uniopd/tracking/scalars.py), and the toggles with the last evaluation in the hparams view."""

    def __init__(self, cfg: ExperimentConfig, run_dir: RunFolder):
        from torch.utils.tensorboard import SummaryWriter

        from uniopd.tracking.scalars import eval_scalars, metric_scalars

        self.writer = SummaryWriter(str(run_dir.path / "tensorboard"))
        self._metric_scalars, self._eval_scalars = metric_scalars, eval_scalars
        self.hparams: dict[str, str | int] = {"method": method_group(cfg), "seed": cfg.seed}
        for tag in toggle_tags(cfg)[1:-1]:
            toggle, value = tag.split(":", 1)
            self.hparams[toggle] = value
        self.last_eval: dict[str, float] = {}

    def log_metrics(self, record: dict) -> None:
        for tag, value in self._metric_scalars(record):
            self.writer.add_scalar(tag, value, record["step"])

    def log_eval(self, step: int, summary: dict, samples: list[dict]) -> None:
        if not self.last_eval:  # the first evaluation names the domains: the Custom Scalars page
            from uniopd.tracking.panels import tensorboard_layout

            domains = sorted(d for d, entry in summary.items() if isinstance(entry, dict))
            self.writer.add_custom_scalars(tensorboard_layout(domains))
        self.last_eval = dict(self._eval_scalars(summary))
        for tag, value in self.last_eval.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def finish(self) -> None:
        metrics = {f"hparam/{k}": v for k, v in self.last_eval.items() if k.endswith("/acc")}
        self.writer.add_hparams(self.hparams, metrics, run_name=".")
        self.writer.close()


class Guarded:
    """A mirror that turns itself off at its first failure, saying so once."""

    def __init__(self, tracker: Tracker, name: str, folder: Path):
        self.tracker, self.name, self.folder = tracker, name, folder
        self.off = False

    def _call(self, method: str, *args) -> None:
        if self.off:
            return
        try:
            getattr(self.tracker, method)(*args)
        except Exception as exc:  # noqa: BLE001 - whatever broke the mirror, the run goes on
            self.off = True
            _turned_off(self.name, self.folder, exc)

    def log_metrics(self, record: dict) -> None:
        self._call("log_metrics", record)

    def log_eval(self, step: int, summary: dict, samples: list[dict]) -> None:
        self._call("log_eval", step, summary, samples)

    def finish(self) -> None:
        self._call("finish")


def _turned_off(name: str, folder: Path, exc: Exception) -> None:
    log.warning(
        "%s mirror failed writing %s (%s: %s); it is off for the rest of this run, whose "
        "directory still records everything",
        name,
        folder,
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )


class Trackers:
    """Several mirrors as one."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def log_metrics(self, record: dict) -> None:
        for t in self.trackers:
            t.log_metrics(record)

    def log_eval(self, step: int, summary: dict, samples: list[dict]) -> None:
        for t in self.trackers:
            t.log_eval(step, summary, samples)

    def finish(self) -> None:
        for t in self.trackers:
            t.finish()


def make_tracker(cfg: ExperimentConfig, run_dir: RunFolder) -> Tracker:
    mirrors: list[Tracker] = []
    made: list[tuple[str, Path, Callable[[], Tracker]]] = [
        ("wandb", run_dir.path / "wandb", lambda: wandb_tracker(cfg, run_dir))
    ]
    if cfg.tracking.tensorboard:
        tensorboard = run_dir.path / "tensorboard"
        made.append(("TensorBoard", tensorboard, lambda: TensorBoardTracker(cfg, run_dir)))
    for name, folder, make in made:
        try:
            tracker = make()
        except ValueError:  # a WANDB_MODE we do not know: bad input, said as such
            raise
        except Exception as exc:  # noqa: BLE001 - a mirror that cannot start is left out
            _turned_off(name, folder, exc)
            continue
        if not isinstance(tracker, NullTracker):
            mirrors.append(Guarded(tracker, name, folder))
    if not mirrors:
        return NullTracker()
    return mirrors[0] if len(mirrors) == 1 else Trackers(mirrors)


def wandb_mode(
    asked: str, env: str | None, logged_in: Callable[[], bool]
) -> tuple[WandbMode, str | None]:
    """The mode the wandb mirror runs in, and the line that says why (None: nothing to say).
    `env`: WANDB_MODE, which wins; `logged_in()`: whether a wandb login is found. `auto` goes
    online when logged in and offline otherwise, saying which."""
    mode = env or asked
    if mode in ("disabled", "off"):
        return "disabled", None
    if mode == "auto":
        if logged_in():
            return "online", "wandb: logged in, mirroring online (tracking.wandb: auto)"
        return "offline", (
            "wandb: not logged in, mirroring offline under the run's wandb/ folder "
            "(`wandb sync` it later; tracking.wandb: auto)"
        )
    if mode == "online" and not logged_in():
        return "offline", "tracking.wandb=online but no wandb login found; mirroring offline"
    if mode not in _PASSED_ON:  # only WANDB_MODE can hold another word: the schema checks ours
        raise ValueError(
            f"unknown wandb mode {mode!r} (WANDB_MODE or tracking.wandb): use auto, online, "
            "offline, shared or disabled"
        )
    return _PASSED_ON[mode], None


def wandb_tracker(cfg: ExperimentConfig, run_dir: RunFolder) -> Tracker:
    mode, why = wandb_mode(cfg.tracking.wandb, os.environ.get("WANDB_MODE"), _logged_in)
    if mode == "disabled":
        return NullTracker()
    if why:
        (log.warning if cfg.tracking.wandb == "online" else log.info)("%s", why)
    return WandbTracker(cfg, run_dir, mode)


def _logged_in() -> bool:
    try:
        import wandb

        return bool(os.environ.get("WANDB_API_KEY") or wandb.api.api_key)
    except Exception:  # noqa: BLE001 - any failure to find a key means "not logged in"
        return False


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
