"""The wandb mirror, for real: an offline wandb run is written and its transaction log read back."""

import glob
import shutil
import struct
import time
from pathlib import Path

import pytest

from uniopd.config import ExperimentConfig
from uniopd.labels import method_group
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan
from uniopd.tracking.mirrors import NullTracker, make_tracker


def read_wandb_log(path):
    """Records of a .wandb file (LevelDB-style log of wandb_internal_pb2.Record protobufs)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, chunks, buf = open(path, "rb").read(), 7, 32768, [], b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += room
            continue
        if pos + 7 + length > len(data):
            break  # a chunk the writer has not finished yet
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            chunks.append(chunk)
        elif kind in (2, 3):
            buf = (b"" if kind == 2 else buf) + chunk
        elif kind == 4:
            chunks.append(buf + chunk)
    records = []
    for raw in chunks:
        record = pb.Record()
        record.ParseFromString(raw)
        records.append(record)
    return records


def read_closed_wandb_log(path, timeout=120.0):
    """Records of a run's transaction log once wandb-core has closed it. `run.finish()` only
    *informs* the service that the run is done; the service flushes and closes the file on its own
    time, so on a loaded machine the file can still be empty when finish returns (CI saw that)."""
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + timeout
    while True:
        try:
            records = read_wandb_log(path)
        except DecodeError:
            records = []  # read mid-write (CI saw that): the service is still appending
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: no exit record {timeout:.0f} s after run.finish()")
        time.sleep(0.2)


def _cfg(tiny_experiment, tmp_path, student, teacher, **extra):
    return ExperimentConfig.model_validate(
        tiny_experiment(
            student,
            teacher,
            {"train": ["builtin:math/train"], "eval": ["builtin:math/test"], "limit": 8},
            tmp_path / "runs",
            name="tracked",
            seed=2,
            eval={"every": 1},
            **extra,
        )
    )


def _offline_uniopd_run(tiny_experiment, tmp_path, make_checkpoint, monkeypatch) -> RunDir:
    """Two steps of Uni-OPD (both balancings, margin shift), mirrored to an offline wandb run."""
    from uniopd.config import save_resolved

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    cfg = _cfg(
        tiny_experiment,
        tmp_path,
        make_checkpoint(11),
        make_checkpoint(12),
        tracking={"wandb": "offline"},
        balance={"offline": {"mode": "balance", "n_samples": 2}, "online": {"enabled": True}},
        calibration={"margin_shift": True},
    )
    run = RunDir.create(cfg.output.root, cfg.name)
    save_resolved(cfg, run.path / "config.yaml")
    prepare(make_plan(cfg), run).train()
    return run


@pytest.mark.slow  # a run mirrored through wandb's service process
def test_offline_mirror_has_config_group_tags_metrics_and_eval(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch
):
    run = _offline_uniopd_run(tiny_experiment, tmp_path, make_checkpoint, monkeypatch)
    files = glob.glob(str(run.path / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(files) == 1
    records = read_closed_wandb_log(files[0])
    header = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert header.run_group == "Uni-OPD" and header.display_name == "tracked"
    assert header.job_type == "train"  # a sweep's trial: its sweep's name
    metrics = [r.metric for r in records if r.WhichOneof("record_type") == "metric"]
    assert any(m.glob_name == "eval/*" and m.step_metric == "trainer/step" for m in metrics)
    assert {"method:opd", "offline:balance", "online:r1-group", "seed:2"} <= set(header.tags)
    config = {item.key: item.value_json for item in header.config.update}
    assert '"margin_shift":true' in config["calibration"].replace(" ", "")
    history = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            history.append(
                {item.key or "/".join(item.nested_key): item.value_json for item in r.history.item}
            )
    assert [h["_step"] for h in history if "loss" in h] == ["1", "2"]
    assert any("eval/math/acc" in h for h in history)
    # the run directory keeps the wandb id, so a resumed run continues the same wandb run
    assert run.read_meta()["wandb_id"] == header.run_id


def test_disabled_by_environment_and_grouping(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    s, t = make_checkpoint(11), make_checkpoint(12)
    cfg = _cfg(tiny_experiment, tmp_path, s, t, tracking={"wandb": "online"})
    assert isinstance(make_tracker(cfg, RunDir(tmp_path)), NullTracker)
    assert method_group(cfg) == "OPD"
    grpo = ExperimentConfig.model_validate(
        {**cfg.model_dump(), "method": {"name": "grpo"}, "teachers": {}}
    )
    assert method_group(grpo) == "GRPO"
    with pytest.raises(ValueError):
        _cfg(tiny_experiment, tmp_path, s, t, tracking={"wandb": "sometimes"})


@pytest.mark.slow  # a run mirrored through wandb's service process
def test_runs_read_back_from_the_mirror_match_the_run_directory(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch
):
    """What `load_wandb` rebuilds from a mirrored config and history equals what the run directory
    says. The history here is read from the offline transaction log of a real run; online, the
    same rows come from wandb.Api().runs(...).scan_history()."""
    import json as _json

    from uniopd.analysis.runs import load_runs, runs_from_history

    run = _offline_uniopd_run(tiny_experiment, tmp_path, make_checkpoint, monkeypatch)
    records = read_closed_wandb_log(
        glob.glob(str(run.path / "wandb" / "offline-run-*" / "run-*.wandb"))[0]
    )
    header = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    config = {item.key: _json.loads(item.value_json) for item in header.config.update}
    history = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {}
            for item in r.history.item:
                value = _json.loads(item.value_json)
                if not isinstance(value, dict):  # tables arrive as dicts of metadata
                    row[item.key or "/".join(item.nested_key)] = value
            history.append(row)
    mirrored = runs_from_history([("tracked", config, history)])
    local = load_runs([run.path])
    assert not mirrored.skipped and len(mirrored.info) == 1
    cols = ["step", "domain", "acc"]
    assert mirrored.evals[cols].to_dict("records") == local.evals[cols].to_dict("records")
    assert mirrored.metrics["loss"].tolist() == pytest.approx(local.metrics["loss"].tolist())
    assert mirrored.info.group.tolist() == local.info.group.tolist()
    assert mirrored.info.run.tolist() == local.info.run.tolist() == ["tracked"]

    # `uniopd figures --wandb` over the same history. The wandb service is outside our reach
    # here, so its public API is stood in for by one that serves this run's real mirrored log.
    import wandb

    class _Run:
        name, id = "tracked", "abc123"

        def __init__(self, job_type, config, history):
            self.job_type, self.config, self.history = job_type, config, history

        def scan_history(self):
            return iter(self.history)

    saved = Path(glob.glob(str(run.path / "wandb" / "offline-run-*" / "files"))[0])

    class _File:  # a file the mirror saved with the run, as the service hands it back
        def __init__(self, name):
            self.name = name

        def download(self, root, replace=False):
            target = Path(root) / self.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved / self.name, target)

    _Run.files = lambda self, names: [_File(n) for n in names if (saved / n).exists()]

    class _Api:
        def runs(self, path):
            assert path == "me/proj"
            return [_Run(header.job_type, config, history)]

    monkeypatch.setattr(wandb, "Api", _Api)
    from uniopd.commands.cli import main

    assert main(["figures", "--wandb", "me/proj", "--out", str(tmp_path / "from_wandb")]) == 0
    assert main(["figures", str(run.path), "--out", str(tmp_path / "from_dir")]) == 0
    from_wandb, from_dir = (
        _json.loads((tmp_path / d / "manifest.json").read_text())
        for d in ("from_wandb", "from_dir")
    )
    assert from_wandb["runs_from"] == ["wandb:me/proj"] and not from_wandb["left_out"]
    names = lambda m: [(f["name"], f["runs"]) for f in m["figures"]]  # noqa: E731
    assert names(from_wandb) == names(from_dir)
    # difficulty histograms: drawn from a file the mirror saved with the run, not from scalars
    assert {"difficulty_histograms", "convergence"} <= {n for n, _ in names(from_dir)}
    assert (tmp_path / "from_wandb" / "ablation_table.md").read_text() == (
        tmp_path / "from_dir" / "ablation_table.md"
    ).read_text()
    # both sources at once: the mirror of a run given locally is the same run, counted once
    assert main(["figures", str(run.path), "--wandb", "me/proj", "--out", str(tmp_path / "b")]) == 0
    both = _json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [x["why"] for x in both["left_out"]] == [
        "run tracked given twice; the first source kept"
    ]


def test_figures_from_wandb_refuse_what_cannot_be_read(tmp_path, monkeypatch, capsys):
    from uniopd.commands.cli import main

    assert main(["figures", "--out", str(tmp_path / "f")]) == 2
    assert "--wandb ENTITY/PROJECT" in capsys.readouterr().err
    assert main(["figures", "--wandb", "just-a-project", "--out", str(tmp_path / "f")]) == 2
    assert "'just-a-project' is not ENTITY/PROJECT" in capsys.readouterr().err
    # no login on this machine: wandb's own refusal, named with the project, and nothing written
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert main(["figures", "--wandb", "me/proj", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "wandb project me/proj: UsageError" in err and "API key" in err
    assert not (tmp_path / "f").exists()


def test_auto_goes_online_when_logged_in_and_says_which():
    from uniopd.tracking.mirrors import wandb_mode

    assert wandb_mode("auto", None, lambda: True)[0] == "online"
    mode, why = wandb_mode("auto", None, lambda: False)
    assert mode == "offline" and "not logged in" in why
    assert wandb_mode("online", None, lambda: False)[0] == "offline"
    assert wandb_mode("offline", None, lambda: True) == ("offline", None)
    assert wandb_mode("auto", "disabled", lambda: True) == ("disabled", None)  # the env wins
    assert wandb_mode("auto", "dryrun", lambda: True) == ("offline", None)  # wandb's old word
    with pytest.raises(ValueError, match="unknown wandb mode 'ofline'"):
        wandb_mode("auto", "ofline", lambda: True)
