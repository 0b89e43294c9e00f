"""Running a sweep: the study is created once, then N worker processes pull trials from its storage.

    uniopd sweep sweeps/margin_delta.yaml --workers 2
    uniopd sweep sweeps/margin_delta.yaml --workers 2 --storage postgresql://user@host/db   # many machines
    uniopd sweep sweeps/margin_delta.yaml --gpus 0,1,2,3          # 4 workers, one GPU each
    uniopd sweep sweeps/margin_delta.yaml --gpus 0,1,2,3 --gpus-per-run 2   # 2 workers, 2 GPUs each

Storage defaults to SQLite beside the trials (<output>/<name>/study.db). Workers beat a
heartbeat; a trial whose worker died (SIGKILL, a lost machine) goes stale after the grace period
and is re-queued once with the same parameters, so the sweep still finishes every trial and none
is counted twice. Re-running the same command after the whole sweep was killed loads the study
and runs only what is missing. Each trial is an ordinary run directory under <name>/trials/.
With --gpus, each worker process sees only its own GPU set (CUDA_VISIBLE_DEVICES), recorded in
the trial's `worker` attribute and trial.json.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import optuna

from uniopd.config import load_experiment
from uniopd.config.load import ConfigError
from uniopd.launch.placement import worker_env
from uniopd.loop import preemption
from uniopd.storage.writable import FolderNotWritable, check_writable
from uniopd.sweep.preempted import forwarding, requeue
from uniopd.sweep.spec import LoadedSweep, Param, _text, load_sweep, objective_value

log = logging.getLogger(__name__)


def storage_url(loaded: LoadedSweep, url: str | None) -> str:
    return url or f"sqlite:///{loaded.root / 'study.db'}"


def open_storage(url: str, loaded: LoadedSweep) -> optuna.storages.RDBStorage:
    kwargs = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    beat = loaded.spec.heartbeat
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=beat.interval,
            grace_period=beat.grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=beat.max_retry
            ),
        )
    except Exception as exc:  # noqa: BLE001 - sqlalchemy / driver errors vary by backend
        raise ConfigError(
            "--storage",
            "-",
            f"cannot open storage {url!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
        ) from exc


def make_study(
    loaded: LoadedSweep, storage: str | optuna.storages.BaseStorage, worker_index: int = 0
) -> optuna.Study:
    spec = loaded.spec
    # each worker its own sampler seed: with one seed, parallel workers propose identical trials
    seed = spec.sampler.seed * 1000 + worker_index
    sampler: optuna.samplers.BaseSampler
    if spec.sampler.kind == "grid":
        sampler = optuna.samplers.GridSampler(
            {k: p.grid() for k, p in spec.space.items()}, seed=seed
        )
    elif spec.sampler.kind == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=spec.pruner.startup_trials, n_warmup_steps=spec.pruner.warmup_evals
        )
        if spec.pruner.kind == "median"
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction=spec.objective.direction,
        load_if_exists=True,
    )


def _suggest(trial: optuna.Trial, name: str, p: Param) -> object:
    if p.type == "categorical":
        return trial.suggest_categorical(name, p.options())
    low, high = p.bounds()
    if p.type == "int":
        return trial.suggest_int(name, int(low), int(high), log=p.log, step=int(p.step or 1))
    return trial.suggest_float(name, low, high, log=p.log, step=p.step)


def run_trial(loaded: LoadedSweep, trial: optuna.Trial) -> float:
    """One trial: a run per seed, each an ordinary run directory; the score is the seeds' mean."""
    from uniopd.launch.start import create_run, start_run

    spec = loaded.spec
    trial.set_user_attr("worker", _whoami())
    params = {name: _suggest(trial, name, p) for name, p in spec.space.items()}
    scores = []
    for i, seed in enumerate(spec.seeds):
        name = f"trial-{trial.number:04d}-s{seed}"
        cfg = load_experiment(
            loaded.base_path,
            [
                *spec.overrides,
                *(f"{k}={_text(v)}" for k, v in params.items()),
                f"seed={seed}",
                f"name={name}",
                f"output.root={loaded.root / 'trials'}",
                "output.progress=false",
            ],
        )
        run = create_run(cfg)
        (run.path / "trial.json").write_text(
            json.dumps(
                {
                    "study": spec.name,
                    "trial": trial.number,
                    "params": params,
                    "seed": seed,
                    "retry_of": _frozen(trial).system_attrs.get("failed_trial"),
                    "worker": _whoami(),
                },
                indent=1,
            )
            + "\n"
        )
        trial.set_user_attr(f"run_s{seed}", str(run.path))
        try:
            # intermediate values for the pruner come from the first seed
            report = (
                (lambda step, summary: _report(trial, spec.objective.metric, step, summary))
                if i == 0
                else None
            )
            _, final = start_run(cfg, run=run, on_eval=report)
        except optuna.TrialPruned:
            (run.path / "pruned.txt").write_text(f"pruned by {spec.pruner.kind} pruner\n")
            raise
        except preemption.Preempted as stop:
            requeue(trial, run.path, stop)
            # NaN makes Optuna fail the trial with one line, not a traceback; its retry stands in
            return float("nan")
        except Exception:
            (run.path / "error.txt").write_text(traceback.format_exc())
            raise
        scores.append(objective_value(spec.objective.metric, final))
    return sum(scores) / len(scores)


def _whoami() -> dict:
    """This worker, as a trial records it: the GPUs are what --gpus pinned it to (None: all)."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def _frozen(trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    return next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)


def _report(trial: optuna.Trial, metric: str, step: int, summary: dict) -> None:
    if step == 0:
        return
    trial.report(objective_value(metric, summary), step)
    if trial.should_prune():
        raise optuna.TrialPruned(f"step {step}")


def _grid_size(study: optuna.Study) -> int:
    space = getattr(study.sampler, "_search_space", None)
    size = 1
    for values in (space or {}).values():
        size *= len(values)
    return size


def finished(study: optuna.Study, grid: bool = False) -> tuple[int, int, int]:
    """(finished, running, waiting). A trial that failed by raising counts as finished; one that
    failed by going stale does not, because its retry (a WAITING trial) stands in for it. On a
    grid, finished counts distinct grid points: parallel workers can pick the same point."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    S = optuna.trial.TrialState
    ended = [
        t
        for t in trials
        if t.state in (S.COMPLETE, S.PRUNED) or (t.state == S.FAIL and t.number not in retried)
    ]
    done = len(ended)
    if grid:
        # cover every point, but never loop past twice the grid: Optuna's GridSampler, racing
        # workers, can keep re-proposing visited points (seen: r = 1.2 never proposed)
        distinct = len({tuple(sorted(t.params.items())) for t in ended})
        done = distinct if len(ended) < 2 * _grid_size(study) else len(ended)
    return (
        done,
        sum(t.state == S.RUNNING for t in trials),
        sum(t.state == S.WAITING for t in trials),
    )


def reap_dead_trials(study: optuna.Study, loaded: LoadedSweep) -> None:
    """Fail and re-queue RUNNING trials whose worker is gone. Heartbeats catch a dead worker on
    any machine after the grace period; this also catches, at once, a worker of this machine whose
    process no longer exists, and a trial killed before its first heartbeat (no worker recorded
    and older than the grace period), which heartbeats alone would leave RUNNING forever."""
    optuna.storages.fail_stale_trials(study)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(
        max_retry=loaded.spec.heartbeat.max_retry
    )
    now, host = time.time(), socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        w = t.user_attrs.get("worker")
        age = now - t.datetime_start.timestamp() if t.datetime_start else 0.0
        dead = (w is None and age > loaded.spec.heartbeat.grace) or (
            w is not None and w["host"] == host and not _alive(w["pid"])
        )
        if not dead:
            continue
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (ValueError, RuntimeError):  # another worker got there first
            continue
        log.warning("trial %d: its worker is gone; re-queued", t.number)
        retry(study, next(x for x in study.get_trials(deepcopy=False) if x.number == t.number))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")  # a killed child not yet waited for is a zombie: dead
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def worker(sweep_path: str, url: str | None, index: int = 0, overrides: Sequence[str] = ()) -> None:
    loaded = load_sweep(sweep_path, overrides)
    study = make_study(loaded, open_storage(storage_url(loaded, url), loaded), worker_index=index)
    wanted = loaded.spec.n_trials()
    log.info(
        "worker %d (pid %d): CUDA_VISIBLE_DEVICES=%s",
        index,
        os.getpid(),
        os.environ.get("CUDA_VISIBLE_DEVICES"),
    )
    while True:
        reap_dead_trials(study, loaded)  # a dead worker's trial is re-queued as WAITING here
        done, running, waiting = finished(study, grid=loaded.spec.sampler.kind == "grid")
        if done >= wanted:
            return
        if done + running >= wanted and not waiting:
            time.sleep(1.0)
            continue
        study.optimize(lambda t: run_trial(loaded, t), n_trials=1, catch=(Exception,))
        if preemption.requested():  # its trial is re-queued: this worker stops
            return


def enqueue_grid(study: optuna.Study, loaded: LoadedSweep) -> None:
    """Queue every grid point no trial holds yet, each exactly once: workers pop queued trials
    first, so racing workers never pick the same point (GridSampler alone can)."""
    import itertools

    S = optuna.trial.TrialState
    held = {
        tuple(sorted(t.params.items()))
        for t in study.get_trials(deepcopy=False)
        if t.state in (S.COMPLETE, S.PRUNED, S.RUNNING, S.WAITING)
    }
    names = list(loaded.spec.space)
    for values in itertools.product(*(loaded.spec.space[n].grid() for n in names)):
        params = dict(zip(names, values))
        if tuple(sorted(params.items())) not in held:
            study.enqueue_trial(params, skip_if_exists=False)


def run_sweep(
    sweep_path: str,
    workers: int,
    url: str | None,
    gpus: list[list[str]] | None = None,
    overrides: Sequence[str] = (),
) -> dict:
    """`workers` worker processes on this machine; with `gpus` (from uniopd.launch.placement), one per
    GPU set, each pinned to its set."""
    if gpus is not None and len(gpus) != workers:
        raise ValueError(f"{workers} workers for {len(gpus)} GPU sets: give one worker per set")
    loaded = load_sweep(sweep_path, overrides)  # every input check before any trial
    try:  # the trials and the SQLite study live here
        check_writable(loaded.root, "the sweep's folder (output/name)")
        loaded.root.mkdir(parents=True, exist_ok=True)  # the study's database is made in it
    except FolderNotWritable as exc:
        raise ConfigError(str(sweep_path), "output", str(exc)) from exc
    resolved = storage_url(loaded, url)
    make_study(loaded, open_storage(resolved, loaded))  # created once, before the workers start
    start = time.time()
    study = make_study(loaded, open_storage(resolved, loaded))
    if loaded.spec.sampler.kind == "grid":
        enqueue_grid(study, loaded)
    # a re-run after a kill gets fresh worker indices, so it does not replay the dead workers' proposals
    base = len(study.trials)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uniopd.sweep.worker",
                str(sweep_path),
                "--storage",
                resolved,
                "--index",
                str(base + i),
                *(f"--set={text}" for text in overrides),  # the command line's, after the file's
            ],
            env=worker_env(gpus[i] if gpus else None, workers),
        )
        for i in range(workers)
    ]
    with forwarding(procs):  # a SIGTERM to this process alone reaches every worker
        codes = [p.wait() for p in procs]
    if any(codes):
        log.warning("worker exit codes %s; re-run the command to finish what is missing", codes)
    summary = write_summary(
        loaded, make_study(loaded, open_storage(resolved, loaded)), resolved, time.time() - start
    )
    return summary


def write_summary(loaded: LoadedSweep, study: optuna.Study, url: str, wall_s: float) -> dict:
    S = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in S}
    complete = [t for t in trials if t.state == S.COMPLETE]
    retries = {
        t.number: t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs
    }
    summary = {
        "study": loaded.spec.name,
        "retried": {str(k): v for k, v in retries.items()},
        "storage": _without_password(url),
        "objective": loaded.spec.objective.model_dump(),
        "trials": counts,
        "wall_seconds_this_invocation": round(wall_s, 1),
    }
    if complete:
        best = study.best_trial
        summary["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "runs": {k: v for k, v in best.user_attrs.items() if k.startswith("run_")},
        }
        if len(complete) >= 2 and len(loaded.spec.space) >= 1:
            try:
                summary["importances"] = optuna.importance.get_param_importances(study)
            except (RuntimeError, ValueError) as exc:  # e.g. a parameter that never varied
                summary["importances_error"] = str(exc)
    (loaded.root / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    study.trials_dataframe().to_csv(loaded.root / "trials.csv", index=False)
    return summary


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
