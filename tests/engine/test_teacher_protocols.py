"""Teachers behind vLLM, SGLang and `uniopd serve-teacher`, through the stand-ins of
served_teacher_stand_ins.py (each built from its server's source, named there): every rollout gets
the served model's log-prob of its own tokens, through the completions interface and through
SGLang's /generate; a server whose answer has the wrong shape stops the run at start-up, naming
its URL and what it answered; a request may take longer the more tokens it carries."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import torch
from served_teacher_stand_ins import SGLangServer, VLLMCompletions, expected, serving

from uniopd.engine.sequences import pack
from uniopd.engine.teacher_client import ServedTeacher, TeacherServerError

PROMPTS = [[5, 17, 300], [9], [44, 2, 7, 101, 3], [12, 12]]
RESPONSES = [[8, 250], [60, 61, 62], [1], [400, 3, 3, 511]]


def _batch():
    return pack(PROMPTS, RESPONSES, pad_id=0)


def _want(width: int) -> torch.Tensor:
    """The toy model's log-prob of each response token, 0 on padding."""
    out = torch.zeros(len(PROMPTS), width)
    for k, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        out[k, : len(r)] = torch.tensor(expected(p + r)[-len(r) :])
    return out


def _scores_every_rollout(client: ServedTeacher) -> None:
    assert client.connect() == "toy/teacher"
    batch = _batch()
    got = client.logprobs(batch)
    want = _want(batch.response_mask_N_T.shape[1])
    assert client.failed_rows == 0
    assert torch.allclose(got, want, atol=1e-6, rtol=0), (got - want).abs().max()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("max_tokens", [0, 1])
def test_a_vllm_server_scores_every_rollout(max_tokens):
    with serving(VLLMCompletions) as url:
        _scores_every_rollout(ServedTeacher(url, max_tokens=max_tokens, rows_per_request=3))


def test_an_sglang_server_scores_every_rollout_through_completions():
    with serving(SGLangServer) as url:
        # what the client sent before: logprobs 0 leaves SGLang's prompt unscored (one null
        # for all of it), so every rollout failed the length check and was masked
        old = {"prompt": [[5, 17, 300]], "max_tokens": 1, "echo": True, "logprobs": 0}
        assert (
            len(_post(url + "/completions", old)["choices"][0]["logprobs"]["token_logprobs"]) == 2
        )
        _scores_every_rollout(ServedTeacher(url, max_tokens=1, rows_per_request=3))


def test_an_sglang_server_scores_every_rollout_through_generate():
    with serving(SGLangServer) as url:
        client = ServedTeacher(url, api="sglang_generate", rows_per_request=3)
        _scores_every_rollout(client)
        # the release's request shape, one sequence: SGLang answers a dict, not a list
        one = _post(
            url.removesuffix("/v1") + "/generate",
            {
                "input_ids": [0, 1, 2, 3],
                "sampling_params": {"max_new_tokens": 0},
                "return_logprob": True,
            },
        )
        assert one["meta_info"]["input_token_logprobs"] == []  # no logprob_start_len: nothing


def test_the_probe_stops_sglang_completions_asked_for_no_new_token():
    with serving(SGLangServer) as url:
        with pytest.raises(TeacherServerError) as info:
            ServedTeacher(url).connect()  # max_tokens 0, which SGLang refuses
    message = str(info.value)
    assert message.startswith(f"teacher server {url}: completions probe (4 tokens)")
    assert "HTTP 400" in message and "max_tokens must be positive" in message
    assert "set teacher_server.max_tokens: 1" in message


@pytest.mark.parametrize(
    "handler, attributes, api, said",
    [
        # a server without echo answers only what it generated: no log-prob of a given token
        (VLLMCompletions, {"ignores_echo": True}, "completions", "holds 0 values for 4 given"),
        # SGLang's route asked of vLLM
        (VLLMCompletions, {}, "sglang_generate", "HTTP 404"),
    ],
)
def test_the_probe_stops_a_server_whose_answer_has_the_wrong_shape(handler, attributes, api, said):
    with serving(handler, **attributes) as url:
        client = ServedTeacher(url, api=api, retries=0)
        with pytest.raises(TeacherServerError) as info:
            client.connect()
    message = str(info.value)
    assert message.startswith(f"teacher server {url}: {api} probe") and said in message
    assert client.failed_rows == 0  # the probe is not a rollout


def test_a_wrong_shape_at_start_stops_the_command_line_run_with_exit_2(
    tiny_experiment, make_checkpoint, tmp_path, capsys
):
    import yaml

    from uniopd.commands.cli import main

    with serving(SGLangServer) as url:
        exp = tmp_path / "served.yaml"
        cfg = tiny_experiment(
            make_checkpoint(11),
            url,
            {"train": ["builtin:math/train"], "limit": 8},
            tmp_path / "runs",
            teacher_server={"retries": 0},
            tracking={"wandb": "disabled"},
        )
        exp.write_text(yaml.safe_dump(cfg))
        start = time.monotonic()
        code = main(["run", str(exp)])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert time.monotonic() - start < 20
    assert f"uniopd: error: teachers.math: teacher server {url}: completions probe" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # stopped before the run directory was made


def test_the_request_timeout_grows_with_its_tokens():
    """A server that takes 1.5 s per answer: a 3-token request, allowed 0.3 + 3 x 0.02 s, times
    out; a 98-token one, allowed 0.3 + 98 x 0.02 s, is answered."""
    short = ([1], [2, 7])
    long = (list(range(3, 53)), list(range(53, 101)))
    with serving(VLLMCompletions, delay_s=1.5) as url:
        client = ServedTeacher(
            url, model="m", timeout_s=0.3, timeout_per_token_s=0.02, retries=0, rows_per_request=1
        )
        got = client.logprobs(pack([short[0], long[0]], [short[1], long[1]], 0))
    assert torch.isnan(got[0]).all() and client.failed_rows == 1
    assert torch.isfinite(got[1]).all()
    assert client.request_timeout(98) == pytest.approx(2.26)


def test_the_default_timeout_keeps_small_requests_as_they_were():
    from uniopd.config.serving import TeacherServerConfig

    cfg = TeacherServerConfig()
    client = ServedTeacher("http://127.0.0.1:1/v1", **cfg.model_dump(exclude={"connect_timeout_s"}))
    assert (cfg.api, cfg.timeout_s) == ("completions", 60.0)
    assert client.request_timeout(1000) == pytest.approx(61.0)  # 1,000 tokens: a second more
    assert client.request_timeout(8 * 20_000) == pytest.approx(220.0)  # 8 rows of 20k tokens


def test_the_api_is_checked_when_the_file_is_read(tmp_path):
    import yaml

    from uniopd.config import ConfigError, ExperimentConfig
    from uniopd.config.load import load_experiment

    base = {
        "name": "x",
        "student": "builtin:student",
        "teachers": {"math": "http://127.0.0.1:8000/v1"},
        "data": {"train": ["builtin:math/train"]},
    }
    ok = ExperimentConfig.model_validate({**base, "teacher_server": {"api": "sglang_generate"}})
    assert ok.teacher_server.api == "sglang_generate"
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({**base, "teacher_server": {"api": "grpc"}}))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert "teacher_server.api" in str(info.value) and "sglang_generate" in str(info.value)


def test_uniopd_serve_teacher_answers_the_request_and_the_probe(make_checkpoint):
    """Our own server (in this process) still scores what the client now sends (logprobs 1),
    probe included, as the in-process teacher does."""
    import threading

    from uniopd.engine import loading
    from uniopd.engine.teacher_server import TeacherServer, make_http_server
    from uniopd.engine.teachers import TeacherPool

    model = loading.load_model(str(make_checkpoint(12)), torch.device("cpu"), torch.float32, False)
    httpd = make_http_server(TeacherServer(model, "ours"), "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    try:
        client = ServedTeacher(f"http://127.0.0.1:{httpd.server_address[1]}", rows_per_request=2)
        assert client.connect() == "ours" and client.vocab_size == 512
        batch = _batch()
        got = TeacherPool({"s": client}, {"math": "s"}).logprobs(batch, ["math"] * len(PROMPTS))
        want = TeacherPool({"t": model}, {"math": "t"}).logprobs(batch, ["math"] * len(PROMPTS))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert client.failed_rows == 0
    assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()
