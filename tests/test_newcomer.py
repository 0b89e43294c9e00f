"""A newcomer's first hour (issue 28), with the venv not activated as README runs everything: the
dashboard found beside the interpreter and ended with `uniopd dashboard`, the notebook's
JupyterLab installed by the analysis extra, the board without access logs, `world info` as a
short table, and `uniopd list` / `fields` answering without loading torch."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from uniopd.commands.cli import main

REPO = Path(__file__).resolve().parents[1]
# PATH as a shell without the venv activated has it: the venv's bin folder is not on it
BARE_ENV = {**os.environ, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"nothing listened on {port} in {seconds} s")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _tiny_sweep(folder: Path) -> Path:
    """A sweep over a four-row experiment: checked in a moment."""
    rows = [{"domain": "math", "prompt": f"{i}+1?", "answer": i + 1} for i in range(4)]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = REPO / "experiments" / "_tiny_world.yaml"
    (folder / "exp.yaml").write_text(
        f"base: {base}\nname: e\nteachers: {{math: builtin:teacher-math}}\n"
        "data: {train: [rows.jsonl], eval: [rows.jsonl]}\n"
    )
    path = folder / "s.yaml"
    path.write_text(
        "name: s\nbase: exp.yaml\nspace: {seed: {type: int, low: 0, high: 1}}\ntrials: 2\n"
    )
    return path


@pytest.mark.slow  # starts optuna-dashboard: a few seconds
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the child process")
def test_the_dashboard_is_found_without_the_venv_on_path_and_ends_with_uniopd(
    tmp_path, monkeypatch
):
    from uniopd.sweep.run import make_study, open_storage, storage_url
    from uniopd.sweep.spec import load_sweep

    monkeypatch.chdir(tmp_path)  # the sweep's storage: runs/sweeps/<name>/ from here
    sweep = str(_tiny_sweep(tmp_path))
    assert main(["dashboard", sweep]) == 2  # no study yet: said, not a dashboard traceback
    loaded = load_sweep(sweep)
    loaded.root.mkdir(parents=True)
    make_study(loaded, open_storage(storage_url(loaded, None), loaded))  # what `sweep` starts with
    port = _free_port()
    command = [sys.executable, "-m", "uniopd.commands.cli", "dashboard", sweep, "--port", str(port)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=BARE_ENV, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, proc)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/", timeout=30).read()
        (child,) = _children(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)  # stopping `uniopd dashboard` by its PID
        proc.wait(timeout=30)
        assert b'"GET /' not in proc.stderr.read()  # its access log: only with -v
        deadline = time.monotonic() + 15
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not Path(f"/proc/{child}").exists(), "optuna-dashboard outlived uniopd"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the port is still served"
    finally:
        proc.kill()
        proc.wait()


def _fake_run(root: Path) -> Path:
    run = root / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        "name: r\nstudent: builtin:student\nteachers: {math: builtin:teacher-math}\n"
        "data: {train: [builtin:math/train]}\nseed: 4\n"
    )
    (run / "meta.json").write_text(json.dumps({"started": "2026-11-29T12:00:00+00:00"}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": 0.5}) + "\n")
    return run


@pytest.mark.slow  # starts TensorBoard
def test_the_board_prints_no_access_log(tmp_path):
    _fake_run(tmp_path / "runs")
    port = _free_port()
    command = [sys.executable, "-m", "uniopd.commands.cli", "board", str(tmp_path / "runs")]
    command += ["--port", str(port), "--logdir", str(tmp_path / "board")]
    proc = subprocess.Popen(command, env=BARE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, proc)
        for page in ("", "data/runs", "data/plugins_listing", "data/environment"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=30).read()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    logged = [line for line in err.decode().splitlines() if '"GET /' in line]
    assert logged == [], err.decode()[-2000:]
    assert "Warning" not in err.decode()  # libraries' own deprecation notes: only with -v
    assert "uniopd board: 1 runs" in out.decode()


def test_the_analysis_extra_installs_what_the_notebook_docs_run():
    """analysis/README.md opens the notebook with `jupyter lab`: JupyterLab is in the extra (the
    notebook itself is executed by tests/test_analysis_folder.py through nbclient)."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {req.split(">")[0].split("=")[0].split("[")[0].strip() for req in extras["analysis"]}
    assert "jupyter lab" in (REPO / "analysis" / "README.md").read_text()
    assert {"jupyterlab", "nbclient", "ipykernel"} <= names


def test_world_info_is_a_short_table_and_json_on_request(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path))
    assert main(["world", "info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["model", "built", "source"]
    assert ["student", "no"] in [line.split()[:2] for line in lines]
    assert len(lines) <= 12 and not any(line.startswith(("{", " ")) for line in lines)
    assert main(["world", "info", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert record["student"]["built"] is False


def test_list_and_fields_answer_without_loading_torch():
    """The describing commands print the same as with torch loaded, and never load it (it was
    most of their 5 s; benchmarks/cli_speed.py prints the times)."""
    expected = {}
    for command in ("list", "fields"):
        buf = io.StringIO()
        with redirect_stdout(buf):
            assert main([command]) == 0
        expected[command] = buf.getvalue()
    probe = (
        "import sys, json\nfrom uniopd.commands.cli import main\nmain([sys.argv[1]])\n"
        "print(json.dumps([m for m in ('torch._C', 'transformers', 'math_verify')"
        " if m in sys.modules]))"
    )
    for command in ("list", "fields"):
        done = subprocess.run(
            [sys.executable, "-c", probe, command],
            env=BARE_ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        printed, _, loaded = done.stdout.rstrip("\n").rpartition("\n")
        assert json.loads(loaded) == [], command
        assert printed + "\n" == expected[command], command
