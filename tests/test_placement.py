"""`--gpus` placement: ids parsed into GPU sets, bad ids refused (exit 2), and every worker process
of a group or a sweep started with its own CUDA_VISIBLE_DEVICES, as recorded from inside it."""

import json
import re

import pytest
import yaml

from uniopd.commands.cli import main
from uniopd.launch.placement import from_flags, gpu_sets, worker_env


@pytest.mark.parametrize(
    "gpus, per_run, sets",
    [
        ("0,1,2,3", 1, [["0"], ["1"], ["2"], ["3"]]),
        ("0,1,2,3", 2, [["0", "1"], ["2", "3"]]),
        ("3, 1", 1, [["3"], ["1"]]),  # the order given is the order used
        ("7", 1, [["7"]]),
    ],
)
def test_gpu_ids_split_into_sets(gpus, per_run, sets):
    assert gpu_sets(gpus, per_run) == sets


@pytest.mark.parametrize(
    "gpus, per_run, reason",
    [
        ("0,,1", 1, "id 2 is empty"),
        ("a", 1, "'a' is not a GPU id"),
        ("0,-1", 1, "'-1' is not a GPU id"),
        ("0,1,01", 1, "GPU 1 is named twice"),
        ("", 1, "no GPU ids"),
        ("0,1,2", 2, "do not split into sets of --gpus-per-run 2"),
        ("0,1", 0, "must be at least 1"),
    ],
)
def test_bad_gpu_ids_are_refused_naming_the_text(gpus, per_run, reason):
    with pytest.raises(ValueError) as err:
        gpu_sets(gpus, per_run)
    assert reason in str(err.value)
    assert per_run == 0 or repr(gpus) in str(err.value)


def test_no_gpus_flag_means_no_placement():
    assert from_flags(None, None) is None
    with pytest.raises(ValueError, match="needs --gpus"):
        from_flags(None, 2)


def test_each_worker_env_is_a_copy_pinned_to_its_set():
    parent = {"PATH": "/bin", "TOKENIZERS_PARALLELISM": "true"}
    env = worker_env(["2", "3"], 2, parent)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["PATH"] == "/bin"
    assert env["TOKENIZERS_PARALLELISM"] == "false" and int(env["OMP_NUM_THREADS"]) >= 1
    assert parent == {"PATH": "/bin", "TOKENIZERS_PARALLELISM": "true"}  # the parent's untouched
    assert worker_env(["0"], 64, {"OMP_NUM_THREADS": "5"})["OMP_NUM_THREADS"] == "5"  # user's
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(None, 1, {})


@pytest.mark.parametrize(
    "argv, reason",
    [
        (["group", "x.yaml", "--gpus", "0,,1"], "id 2 is empty"),
        (["group", "x.yaml", "--gpus", "a"], "'a' is not a GPU id"),
        (["group", "x.yaml", "--gpus", "0,0"], "GPU 0 is named twice"),
        (["group", "x.yaml", "--gpus", "0,1,2", "--gpus-per-run", "2"], "do not split"),
        (["group", "x.yaml", "--gpus-per-run", "2"], "needs --gpus"),
        (["sweep", "s.yaml", "--gpus", "0,,1"], "id 2 is empty"),
        (["sweep", "s.yaml", "--gpus", "0,1", "--workers", "3"], "one worker per set"),
    ],
)
def test_cli_refuses_bad_gpu_flags_with_exit_2(argv, reason, capsys):
    assert main(argv) == 2
    assert reason in capsys.readouterr().err


def _experiment(tiny_experiment, folder, name, student, teacher, runs):
    cfg = tiny_experiment(
        student,
        {"math": teacher, "code": teacher},
        {"train": ["builtin:math/train"], "eval": ["builtin:math/test"], "limit": 8},
        runs,
        name=name,
        rollout={"max_new_tokens": 4},
        train={"steps": 1},
    )
    path = folder / f"{name}.yaml"
    path.write_text(f"# {name}.yaml — placement test\n" + yaml.safe_dump(cfg))
    return path


@pytest.mark.slow  # three real runs in worker processes, two at a time
def test_group_runs_on_a_pool_pinned_one_worker_per_gpu_set(
    tiny_experiment, tmp_path, make_checkpoint, capsys
):
    folder, runs = tmp_path / "study", tmp_path / "runs"
    folder.mkdir()
    s, t = make_checkpoint(11), make_checkpoint(12)
    broken = tmp_path / "broken"  # passes planning, fails in its worker when the model loads
    broken.mkdir()
    (broken / "config.json").write_text("not a model config")
    for name, student in (("a", s), ("b", s), ("c", broken)):
        _experiment(tiny_experiment, folder, name, student, t, runs)

    assert main(["group", str(folder), "--gpus", "0,1"]) == 1  # c failed, a and b went on
    err = capsys.readouterr().err
    assert "[3/3] c-s0: FAILED (exit" in err and "1 run(s) failed: c-s0" in err
    assert re.search(r"\[1/3\] a-s0: \{'math': [0-9.]+\}", err)  # the final line, as in-process
    # a and b started together, one on each set: each worker saw only its own GPU
    seen = {n: json.loads((runs / n / "meta.json").read_text()) for n in ("a-s0", "b-s0")}
    assert seen["a-s0"]["cuda_visible_devices"] == "0"
    assert seen["b-s0"]["cuda_visible_devices"] == "1"
    assert seen["a-s0"]["command"][1:] == ["run", str(folder / "a.yaml"), "seed=0", "name=a-s0"]

    # again: the finished runs are skipped, only the failed one is tried once more
    assert main(["group", str(folder), "--gpus", "0,1"]) == 1
    err = capsys.readouterr().err
    assert err.count("already complete, skipped") == 2 and "c-s0: FAILED" in err


@pytest.mark.sweep  # a real sweep: two worker processes, two trials
def test_sweep_starts_one_worker_per_gpu_set_each_pinned(
    tiny_experiment, tmp_path, make_checkpoint, monkeypatch, capfd
):
    monkeypatch.chdir(tmp_path)
    s, t = make_checkpoint(11), make_checkpoint(12)
    _experiment(tiny_experiment, tmp_path, "b", s, t, tmp_path / "runs")
    spec = {
        "name": "s",
        "base": "b.yaml",
        "output": str(tmp_path / "out"),
        "space": {"train.lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}},
        "sampler": {"kind": "random", "seed": 1},
        "objective": {"metric": "eval.mean.acc"},
        "trials": 2,
        "pruner": {"kind": "none"},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))

    assert main(["sweep", "s.yaml", "--gpus", "0,1,2,3", "--gpus-per-run", "2"]) == 0
    # each worker logs, from inside its process, the GPUs it was given
    seen = re.findall(
        r"worker \d+ \(pid (\d+)\): CUDA_VISIBLE_DEVICES=(\S+)", capfd.readouterr().err
    )
    assert sorted(gpus for _, gpus in seen) == ["0,1", "2,3"]
    # and every trial records the set of the worker that ran it
    for trial in (tmp_path / "out" / "s" / "trials").iterdir():
        worker = json.loads((trial / "trial.json").read_text())["worker"]
        assert (str(worker["pid"]), worker["cuda_visible_devices"]) in seen
