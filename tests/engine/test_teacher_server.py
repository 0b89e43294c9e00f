"""Teachers as services: `uniopd serve-teacher` as a real process, scored through the client.

The served scores equal the in-process teacher's; concurrent requests share forward passes; a
server killed mid-run leaves the later steps' rollouts masked and counted while the run finishes;
a server down at start stops the run naming its URL; a misbehaving server (malformed JSON, wrong
counts, non-numbers, choices out of order) masks exactly the rows it answered badly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from uniopd.engine import loading
from uniopd.engine.sequences import encode_prompts, pack
from uniopd.engine.teacher_client import ServedTeacher, TeacherServerError
from uniopd.engine.teachers import TeacherPool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(checkpoint, log_path, *extra) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "uniopd", "serve-teacher", str(checkpoint), "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([*cmd, *extra], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve-teacher exited: {open(log_path).read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    _stop(proc)
    raise AssertionError(f"serve-teacher did not come up in 90 s: {open(log_path).read()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _counters(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=5) as resp:
        lines = resp.read().decode().split()
    return {
        k.removeprefix("uniopd_teacher_").removesuffix("_total"): int(v)
        for k, v in zip(lines[::2], lines[1::2])
    }


@pytest.fixture(scope="module")
def server(make_checkpoint, tmp_path_factory):
    """A real `uniopd serve-teacher` process on a tiny checkpoint: (url, checkpoint)."""
    ckpt = make_checkpoint(12)
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    proc, url = _start_server(ckpt, log_path, "--batch-wait-ms", "20")
    yield url, ckpt
    _stop(proc)


def _batch(tok, n: int = 6):
    """Rows of several prompt and response lengths (so both paddings are exercised)."""
    prompts = encode_prompts(tok, [f"Ana has {i} pens." + " And more." * (i % 3) for i in range(n)])
    texts = ["3 + 1 = 4.", "def f(x):", "\\boxed{7}", "no", "5 - 2 = 3. Then 3 * 2 = 6.", "x"]
    responses = [tok(texts[i % len(texts)])["input_ids"] for i in range(n)]
    return pack(prompts, responses, tok.pad_token_id)


@pytest.mark.slow  # a `uniopd serve-teacher` process
def test_served_scores_equal_the_in_process_teacher(server):
    url, ckpt = server
    tok = loading.load_tokenizer(str(ckpt))
    local = loading.load_model(str(ckpt), torch.device("cpu"), torch.float32, False)
    batch = _batch(tok)
    client = ServedTeacher(url, rows_per_request=2, max_concurrency=2)
    assert client.connect() == str(ckpt)  # the name the server lists
    want = TeacherPool({"t": local}, {"math": "t"}).logprobs(batch, ["math"] * 6)
    got = TeacherPool({"s": client}, {"math": "s"}).logprobs(batch, ["math"] * 6)
    assert torch.isfinite(got).all() and (got[batch.response_mask_N_T == 0] == 0).all()
    assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()
    assert client.failed_rows == 0


@pytest.mark.slow  # a `uniopd serve-teacher` process
def test_concurrent_requests_share_forward_passes(server):
    url, ckpt = server
    tok = loading.load_tokenizer(str(ckpt))
    batch = _batch(tok, 16)
    client = ServedTeacher(url, rows_per_request=1, max_concurrency=16)
    client.connect()  # its start-up probe is one request more: count from here
    before = _counters(url)
    assert torch.isfinite(client.logprobs(batch)).all()
    after = _counters(url)
    requests = after["requests"] - before["requests"]
    forwards = after["forwards"] - before["forwards"]
    assert requests == 16
    assert forwards < requests, f"{requests} requests took {forwards} forward passes"


def _experiment(tiny_experiment, tmp_path, student, teacher_url, steps=3, **extra):
    from uniopd.config import ExperimentConfig

    return ExperimentConfig.model_validate(
        tiny_experiment(
            student,
            teacher_url,
            {"train": ["builtin:math/train"], "eval": ["builtin:math/test"], "limit": 8},
            tmp_path / "runs",
            name="served",
            seed=3,
            teacher_server={"retries": 1, "backoff_s": 0.05, "timeout_s": 10},
            train={"steps": steps, "epochs": 1},
            eval={"max_prompts_per_domain": 1},
            tracking={"wandb": "disabled"},
            **extra,
        )
    )


@pytest.mark.slow  # a `uniopd serve-teacher` process, killed mid-run
def test_a_server_killed_mid_run_masks_and_counts_the_later_steps(
    tiny_experiment, make_checkpoint, tmp_path
):
    from uniopd.launch.start import start_run

    proc, url = _start_server(make_checkpoint(12), tmp_path / "server.log")
    try:

        def kill_after_first(step, metrics):
            if step == 1:
                _stop(proc)

        cfg = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), url)
        run, _ = start_run(cfg, on_step=kill_after_first)
    finally:
        _stop(proc)
    metrics = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]  # the run finished
    assert [m["teacher/failed_rollouts"] for m in metrics] == [0, 4, 4]
    assert [m["teacher/failed_frac"] for m in metrics] == [0.0, 1.0, 1.0]
    assert metrics[0]["loss"] != 0.0
    assert [m["loss"] for m in metrics[1:]] == [0.0, 0.0]  # every token masked
    for step in (2, 3):
        path = run.path / "rollouts" / f"step_{step:06d}.jsonl"
        for rec in map(json.loads, path.read_text().splitlines()):
            assert rec["length"] > 0 and rec["teacher_logp"] == [None] * rec["length"]


def test_a_server_down_at_start_stops_the_run_naming_its_url(
    tiny_experiment, make_checkpoint, tmp_path, capsys
):
    import yaml

    from uniopd.commands.cli import main

    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    cfg = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), url)
    exp = tmp_path / "served.yaml"
    exp.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    start = time.monotonic()
    assert main(["run", str(exp)]) == 2
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err
    assert "uniopd: error: teachers.math: teacher server " + url in err
    # refused before any model loaded and before the run directory was made
    assert not (tmp_path / "runs").exists()


# --- a misbehaving third-party server ----------------------------------------------------------

# the first prompt token picks how the stand-in server answers that row
GOOD, SHORT, LONG, NULL, POSITIVE, TEXT, MISSING, GARBAGE, ERROR = range(1, 10)


def _fake_logprobs(ids: list[int]) -> list:
    return [None] + [-t / 1000 for t in ids[1:]]  # checkable: the value says which token


class _Misbehaving(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompts = body["prompt"]
        if any(p[0] == ERROR for p in prompts):
            self.send_error(500)
            return
        if any(p[0] == GARBAGE for p in prompts):
            return self._reply(b'{"choices": [{"index": 0, "logprobs": {"token_logp')
        choices = []
        for i, ids in enumerate(prompts):
            lp = _fake_logprobs(ids)
            mode = ids[0]
            if mode == MISSING:
                continue
            lp = {
                SHORT: lp[:-1],
                LONG: lp + [-0.5],
                NULL: lp[:-1] + [None],
                POSITIVE: lp[:-1] + [2.0],
                TEXT: lp[:-1] + ["-0.1"],
            }.get(mode, lp)
            choices.append({"index": i, "text": "", "logprobs": {"token_logprobs": lp}})
        choices.reverse()  # out of order: the client matches them by index
        self._reply(json.dumps({"object": "text_completion", "choices": choices}).encode())

    vocab_size = None  # as vLLM's model list: no vocabulary size

    def do_GET(self):  # noqa: N802
        model = {"id": "stand-in"}
        if self.vocab_size is not None:
            model["vocab_size"] = self.vocab_size
        self._reply(json.dumps({"object": "list", "data": [model]}).encode())

    def _reply(self, data: bytes):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def misbehaving():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_bad_answers_mask_exactly_their_rows(misbehaving):
    from uniopd.loop.records import teacher_failed_N
    from uniopd.loop.scoring import TeacherSignals

    modes = [GOOD, SHORT, GOOD, LONG, NULL, GOOD, POSITIVE, TEXT, MISSING, GOOD]
    prompts = [[m, 20 + m, 30 + k] for k, m in enumerate(modes)]
    responses = [list(range(40 + k, 40 + k + 1 + k % 4)) for k in range(len(modes))]
    batch = pack(prompts, responses, pad_id=0)
    client = ServedTeacher(misbehaving, rows_per_request=4, max_concurrency=2)
    assert client.connect() == "stand-in"
    got = TeacherPool({"s": client}, {"math": "s"}).logprobs(batch, ["math"] * len(modes))
    for k, mode in enumerate(modes):
        t = len(responses[k])
        if mode == GOOD:  # each value is its own token's: nothing shifted between rows or columns
            assert got[k, :t].tolist() == pytest.approx([-x / 1000 for x in responses[k]])
            assert (got[k, t:] == 0).all()
        else:
            assert torch.isnan(got[k, :t]).all(), mode
    bad = sum(m != GOOD for m in modes)
    assert client.failed_rows == bad
    signals = TeacherSignals(["math"] * len(modes), teacher_logp_N_T=got)
    failed = teacher_failed_N(signals, batch.response_mask_N_T)
    assert failed is not None and failed.tolist() == [m != GOOD for m in modes]


def test_malformed_json_and_server_errors_mask_their_requests_only(misbehaving):
    modes = [GOOD, GARBAGE, GOOD, ERROR, GOOD]
    batch = pack([[m, 7] for m in modes], [[50 + k, 60] for k in range(5)], pad_id=0)
    client = ServedTeacher(misbehaving, rows_per_request=1, retries=2, backoff_s=0.01)
    client.connect()
    got = client.logprobs(batch)
    assert [bool(torch.isnan(got[k]).all()) for k in range(5)] == [m != GOOD for m in modes]
    assert got[0].tolist() == pytest.approx([-0.05, -0.06])
    assert client.failed_rows == 2
    assert client.retried == 2  # the 500 was retried; the malformed body was not


def test_an_unreachable_server_is_retried_then_masked():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(TeacherServerError, match=url):
        ServedTeacher(url).connect(timeout_s=2)
    client = ServedTeacher(url, model="m", retries=2, backoff_s=0.01, rows_per_request=2)
    batch = pack([[1, 2], [3], [4, 5]], [[6, 7], [8], [9]], pad_id=0)
    start = time.monotonic()
    got = client.logprobs(batch)
    assert time.monotonic() - start < 5
    assert torch.isnan(got).all() and client.failed_rows == 3 and client.retried == 4


def test_a_served_model_with_another_vocabulary_is_refused_at_start(
    tiny_experiment, make_checkpoint, tmp_path
):
    from uniopd.setup.parts import load_parts
    from uniopd.setup.plan import make_plan

    _Misbehaving.vocab_size = 999  # the tiny checkpoints score 512 token ids
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        cfg = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), url, steps=1)
        with pytest.raises(loading.ModelLoadError, match=r"teachers\.math .*scores 999 token ids"):
            load_parts(make_plan(cfg))
    finally:
        _Misbehaving.vocab_size = None
        httpd.shutdown()
        httpd.server_close()
