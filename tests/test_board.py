"""`uniopd board`: TensorBoard over run directories, followed live. Real runs of OPD, Uni-OPD and
GRPO (the coin task, two steps each), served on a free local port and loaded in headless
Chromium, whose page must list the three methods' runs."""

import json
import shutil
import socket
import subprocess
import urllib.request

import pytest

from uniopd.board.command import free_port, prepare, start, write_layout


def _scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {  # float32 in the event file
        tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def test_a_run_being_written_shows_up_to_its_last_complete_line(tmp_path):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        "name: r\nstudent: builtin:student\nteachers: {math: builtin:teacher-math}\n"
        "data: {train: [builtin:math/train]}\nseed: 4\n"
    )
    (run / "meta.json").write_text(json.dumps({"started": "2026-11-29T12:00:00+00:00"}))
    lines = [{"step": s, "reward": s / 10, "time/step": 2.0} for s in (1, 2, 3)]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    (run / "metrics.jsonl").write_text(text[:-20])  # the third line torn mid-write
    (run / "eval.jsonl").write_text(json.dumps({"step": 0, "math": {"acc": 0.5}}) + "\n")
    (tmp_path / "runs" / "notes").mkdir()  # not a run: no config.yaml
    board = prepare([str(tmp_path / "runs"), str(tmp_path / "missing")], tmp_path / "board")
    assert [w for w, _ in board.skipped] == [str(tmp_path / "missing")]
    assert board.poll() == 3
    (logdir,) = [f.writer.log_dir for f in board.followers]
    assert logdir.endswith("OPD/math<-teacher-math/s4")
    assert _scalars(logdir)["reward"] == [(1, 0.1), (2, 0.2)]
    assert _scalars(logdir)["eval/math/acc"] == [(0, 0.5)]
    (run / "metrics.jsonl").write_text(text)  # the line completed
    assert board.poll() == 1
    assert [s for s, _ in _scalars(logdir)["reward"]] == [1, 2, 3]
    board.stop()


def test_a_busy_port_is_replaced_by_a_free_one():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other, asked = free_port(port)
        assert not asked and other != port


@pytest.mark.slow  # three training runs and a browser
def test_the_board_shows_opd_uni_opd_and_grpo_in_a_browser(method_runs, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed for this test (.ci/run installs it)"
    root = method_runs
    board = prepare([str(root)], tmp_path / "board")
    board.poll()
    write_layout(board)
    port, _ = free_port(0)
    url = start(board, port)
    # the Custom Scalars page, as TensorBoard serves it: before / after calibration on one chart
    with urllib.request.urlopen(f"{url}data/plugin/custom_scalars/layout", timeout=60) as r:
        layout = json.loads(r.read())
    charts = {c["title"]: c["multiline"]["tag"] for cat in layout["category"] for c in cat["chart"]}
    assert charts["order consistency before / after calibration"] == [
        "^order/consistency_before$",
        "^order/consistency_after$",
    ]
    assert charts["math: held-out accuracy"] == ["^eval/math/acc$"]
    page = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000"]
        + ["--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    board.stop()
    for method in ("OPD/math&lt;-", "Uni-OPD/math&lt;-", "GRPO/no teacher"):
        assert method in page, method
    # the tracking.tensorboard mirror wrote the same curves during the run, and the toggles
    mirror = _scalars(root / "opd" / "tensorboard")
    followed = _scalars(next(f.writer.log_dir for f in board.followers if "/opd" in str(f.run)))
    assert mirror["reward"] == followed["reward"] and len(mirror["reward"]) == 2
    assert mirror["eval/math/acc"] == followed["eval/math/acc"]
    assert any((root / "opd" / "tensorboard").rglob("events.out.tfevents.*"))
    # and the same Custom Scalars page, for `tensorboard --logdir runs`
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(root / "opd" / "tensorboard"))
    acc.Reload()
    assert "custom_scalars__config__" in acc.Tags()["tensors"]
