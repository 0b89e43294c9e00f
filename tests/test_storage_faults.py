"""Storage faults: a full disk mid-run ends the run with one message (exit code 3) naming the
file, the newest intact checkpoint and the command that resumes; the resumed run ends exactly as
an uninterrupted one. A folder that cannot be written is refused before any compute (exit 2).

The full disk is a file-size limit (RLIMIT_FSIZE) on the run's process: the kernel refuses the
write that would grow a file past it (EFBIG), below Python and every library, the way a full disk
refuses it with ENOSPC. The read-only folders are real read-only tmpfs mounts in a user namespace
(`unshare -rm`), skipped where the machine allows none.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fault_runs import (
    assert_same_training,
    lines,
    no_torn_lines,
    no_traceback,
    reference,
    uniopd,
)

from uniopd.storage.faults import (
    EXIT_STORAGE_FAULT,
    StorageFault,
    append_line,
    storage_reason,
    write_text_atomic,
)
from uniopd.storage.writable import FolderNotWritable, check_writable


def _crashed_after_step_2(ref: Path, into: Path) -> Path:
    """The reference run as a kill after its step-2 checkpoint leaves it."""
    run = into / "r"
    shutil.copytree(ref, run)
    for ckpt in (run / "checkpoints").glob("step_*"):
        if ckpt.name != "step_000002":
            shutil.rmtree(ckpt)
    (run / "checkpoints" / "latest").write_text("step_000002\n")
    return run


def _bytes_of_lines(path: Path, n: int) -> int:
    return sum(len(x) + 1 for x in path.read_bytes().split(b"\n")[:n])


def _refused(done, run: Path, file: str, what: str) -> None:
    assert done.returncode == EXIT_STORAGE_FAULT, done.stderr[-3000:]
    no_traceback(done.stderr)
    said = done.stderr
    assert f"could not write {what}" in said and file in said, said[-2000:]
    assert f"The newest intact checkpoint is {run / 'checkpoints' / 'step_000002'}" in said
    assert f"uniopd run --resume {run}" in said
    no_torn_lines(run)
    assert not list((run / "checkpoints").glob(".step_*")), "an unfinished checkpoint was left"


@pytest.mark.slow  # four resumed runs, each in its own process
def test_full_disk_at_a_checkpoint_a_metrics_line_and_a_rollout_file_then_resumed(
    tiny_experiment, make_checkpoint, tmp_path_factory, tmp_path
):
    ref = reference(tiny_experiment, make_checkpoint, tmp_path_factory)
    run = _crashed_after_step_2(ref, tmp_path)
    weights = (ref / "checkpoints" / "step_000002" / "model.safetensors").stat().st_size
    metrics = ref / "metrics.jsonl"

    # 1. the disk fills while step 4's checkpoint is written (the weights are its largest file)
    done = uniopd("run", "--resume", str(run), limit=weights - 1)
    _refused(done, run, ".step_000004.tmp", "the checkpoint of step 4")
    assert [m["step"] for m in lines(run / "metrics.jsonl")] == [1, 2, 3, 4]

    # 2. ... while step 3's metrics line is appended: part of it fits, and is cut back
    done = uniopd("run", "--resume", str(run), limit=_bytes_of_lines(metrics, 2) + 10)
    _refused(done, run, "metrics.jsonl", "the metrics of step 3")
    assert [m["step"] for m in lines(run / "metrics.jsonl")] == [1, 2]

    # 3. ... while step 3's rollouts are written (after its metrics line, which fits)
    limit = _bytes_of_lines(metrics, 3) + 100
    assert (ref / "rollouts" / "step_000003.jsonl").stat().st_size > limit
    done = uniopd("run", "--resume", str(run), limit=limit)
    _refused(done, run, "step_000003.jsonl", "the rollouts of step 3")
    assert not (run / "rollouts" / ".step_000003.jsonl.tmp").exists()

    # space freed: the run ends as the uninterrupted one did
    done = uniopd("run", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_training(ref, run)
    resumes = json.loads((run / "meta.json").read_text())["resumes"]
    assert [r["from_step"] for r in resumes] == [2, 2, 2, 2]


def test_a_full_device_cuts_the_half_written_line_back(tmp_path):
    """/dev/full refuses every write with ENOSPC: the fault names the file and what it held."""
    with pytest.raises(StorageFault) as caught:
        append_line(Path("/dev/full"), '{"step": 3}\n', "the metrics of step 3")
    assert "could not write the metrics of step 3 to /dev/full" in str(caught.value)
    assert "No space left on device" in str(caught.value)


def test_a_refused_atomic_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "full" / "eval.jsonl"
    target.parent.mkdir()
    (target.parent / ".eval.jsonl.tmp").symlink_to("/dev/full")  # the temporary name is full
    with pytest.raises(StorageFault):
        write_text_atomic(target, "x\n" * 10, "the evaluation at step 2")
    assert not target.exists() and not (target.parent / ".eval.jsonl.tmp").exists()


def test_which_errors_are_storage_faults():
    assert storage_reason(OSError(errno.ENOSPC, "No space left on device")) is not None
    assert storage_reason(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    rust = RuntimeError("Error while serializing: I/O error: File too large (os error 27)")
    assert storage_reason(rust) == "File too large"
    assert storage_reason(RuntimeError("[enforce fail at inline_container.cc] unexpected pos 5"))
    assert storage_reason(OSError(errno.ENOENT, "No such file")) is None
    assert storage_reason(ValueError("bad value")) is None


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(FolderNotWritable, match="it is a file"):
        check_writable(tmp_path / "runs", "output.root")
    with pytest.raises(FolderNotWritable, match=f"{tmp_path / 'runs'} is a file"):
        check_writable(tmp_path / "runs" / "deeper", "output.root")
    # a writable root passes and the check leaves nothing behind: the run makes its own folders
    assert check_writable(tmp_path / "new" / "root", "output.root") == tmp_path / "new" / "root"
    assert not (tmp_path / "new").exists()


def _read_only_mount_works() -> bool:
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o ro,size=64k tmpfs /mnt && echo ok"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() == "ok"


read_only = pytest.mark.skipif(
    shutil.which("unshare") is None or not _read_only_mount_works(),
    reason="no user namespaces here: a read-only mount needs `unshare -rm`",
)


def _in_read_only_folder(folder: Path, *uniopd_args: str, env_home: str | None = None):
    """`uniopd ARGS` in a mount namespace where `folder` is an empty read-only tmpfs."""
    from fault_runs import CLI, ENV

    env = dict(ENV) if env_home is None else {**ENV, "UNIOPD_HOME": env_home}
    folder.mkdir(parents=True, exist_ok=True)
    script = f'mount -t tmpfs -o ro,size=64k tmpfs "{folder}" && exec "$@"'
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *CLI, *uniopd_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@read_only
@pytest.mark.slow  # two command-line runs
def test_read_only_output_root_and_home_are_refused_before_any_model_loads(
    tiny_experiment, make_checkpoint, tmp_path
):
    from fault_runs import experiment

    exp = experiment(tiny_experiment, tmp_path, make_checkpoint)
    ro = tmp_path / "ro"
    done = _in_read_only_folder(ro, "run", str(exp), f"output.root={ro / 'runs'}")
    assert done.returncode == 2, done.stderr[-3000:]
    no_traceback(done.stderr)
    assert f"output.root {ro / 'runs'}: cannot be created (Read-only file system)" in done.stderr
    assert "Loading weights" not in done.stderr

    # the tiny world's models are copied into $UNIOPD_HOME: a read-only one is refused first
    quickstart = Path(__file__).parents[1] / "experiments" / "quickstart.yaml"
    args = ["run", str(quickstart), f"output.root={tmp_path / 'runs'}"]
    done = _in_read_only_folder(ro, *args, env_home=str(ro / "home"))
    assert done.returncode == 2, done.stderr[-3000:]
    no_traceback(done.stderr)
    assert "$UNIOPD_HOME, where builtin:" in done.stderr
    assert f"{ro / 'home'}" in done.stderr and "Read-only file system" in done.stderr
    assert "Loading weights" not in done.stderr and not (tmp_path / "runs").exists()


def test_a_difficulty_cache_that_cannot_be_written_costs_only_the_shortcut(tmp_path, caplog):
    """The difficulty cache in $UNIOPD_HOME saves the next run its sampling; a full disk (the
    temporary name is /dev/full) or a file in its way is said once and the run goes on, where it
    used to stop the run with exit 3 after the whole estimate was sampled."""
    from uniopd.loop.difficulty import _write_cache

    full = tmp_path / "difficulty" / "k.json"
    full.parent.mkdir()
    (full.parent / ".k.json.tmp").symlink_to("/dev/full")
    (tmp_path / "blocked").write_text("a file where the cache folder goes")
    with caplog.at_level("WARNING", logger="uniopd.loop.difficulty"):
        _write_cache(full, {"pass_counts": [1, 2]})
        _write_cache(tmp_path / "blocked" / "difficulty" / "k.json", {"pass_counts": [1, 2]})
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and all("this run goes on" in s for s in said), said
    assert "No space left on device" in said[0] and str(tmp_path / "blocked") in said[1]
    assert not full.exists() and not (full.parent / ".k.json.tmp").exists()
