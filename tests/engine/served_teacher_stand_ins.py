"""Stand-ins for the teacher servers uniopd cannot install here (vLLM, SGLang): tiny HTTP servers
on 127.0.0.1 that check requests and build answers as each server's source does, over a fixed
toy language model (`lm_logprobs`), so a test can compare every score with the exact value.

They copy the request rules and answer shapes, not the engines: no batching, no KV cache. Where
the source reads a value the engine computes (a prompt log-prob, a sampled token), the toy model
gives it; sampling is greedy.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VOCAB = 512  # as the tiny test checkpoints, so their token ids are valid here too
MODEL = "toy/teacher"


def lm_logprobs(prev: int) -> list[float]:
    """log p(. | prev) of the toy model: a fixed, normalized distribution over VOCAB ids that
    depends on the previous token only."""
    logits = [3.0 * math.sin(0.37 * prev + 0.71 * t + 0.05 * prev * t) for t in range(VOCAB)]
    top = max(logits)
    log_z = top + math.log(sum(math.exp(x - top) for x in logits))
    return [x - log_z for x in logits]


def expected(seq: list[int]) -> list[float]:
    """log p(seq[j] | seq[:j]) for j >= 1, under the toy model."""
    return [lm_logprobs(seq[j - 1])[seq[j]] for j in range(1, len(seq))]


def _greedy(seq: list[int], count: int) -> list[tuple[int, list[float]]]:
    """`count` greedily generated tokens after `seq`, each with the distribution it came from."""
    out, prev = [], seq[-1]
    for _ in range(count):
        dist = lm_logprobs(prev)
        tok = max(range(VOCAB), key=dist.__getitem__)
        out.append((tok, dist))
        prev = tok
    return out


def _text(tok: int) -> str:
    return f"t{tok}"  # the toy tokenizer's text of one token


def _top(dist: list[float], k: int) -> list[tuple[int, float]]:
    return sorted(enumerate(dist), key=lambda kv: -kv[1])[:k]


class BadRequest(ValueError):
    pass


class _Handler(BaseHTTPRequestHandler):
    """Routes to `routes` {(method, path): fn(body) -> payload}; BadRequest gives a 400 in
    `error_body(message)`; `delay_s` is slept before every POST answer (a slow server)."""

    routes: dict = {}
    delay_s = 0.0

    def error_body(self, message: str) -> dict:
        raise NotImplementedError

    def _send(self, code: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        fn = self.routes.get((method, self.path.split("?")[0].rstrip("/")))
        if fn is None:
            return self._send(404, {"detail": "Not Found"})  # FastAPI's answer to no route
        body = None
        if method == "POST":
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(self.delay_s)
        try:
            self._send(200, fn(self, body))
        except BadRequest as exc:
            self._send(400, self.error_body(str(exc)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timed-out request)

    def do_GET(self):  # noqa: N802 - http.server's name
        self._route("GET")

    def do_POST(self):  # noqa: N802
        self._route("POST")

    def log_message(self, *args):
        pass


def _prompts(prompt) -> list[list[int]]:
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        prompt = [prompt]
    if not isinstance(prompt, list) or not all(isinstance(p, list) and p for p in prompt):
        raise BadRequest("prompt: expected token ids")
    for p in prompt:
        if not all(isinstance(t, int) and 0 <= t < VOCAB for t in p):
            raise BadRequest(f"Token id out of vocabulary in {p}")
    return prompt


# --- vLLM ---------------------------------------------------------------------------------------


class VLLMCompletions(_Handler):
    """vLLM's OpenAI server, POST /v1/completions and GET /v1/models, after
    vllm/entrypoints/openai/completion/protocol.py at 002032e (CompletionRequest: `max_tokens`
    default 16, null read as 16; `logprobs` an int >= 0 or -1; under `echo`, `prompt_logprobs` =
    `logprobs`; echo with `max_tokens` 0 is served with max_tokens 1, "echo without generation")
    and vllm/entrypoints/openai/completion/serving.py at 030ea52
    (request_output_to_completion_response: with echo and max_tokens 0 only the prompt's tokens
    and log-probs are answered, else prompt then output; _create_completion_logprobs: a null
    log-prob where a position has none, the first prompt token's; values clamped at -9999;
    choices indexed in prompt order). `ignores_echo` makes a server without echo (it answers
    only the generated tokens), to give a wrong shape."""

    ignores_echo = False

    def error_body(self, message: str) -> dict:
        return {
            "error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}
        }

    def models(self, _body) -> dict:
        card = {"id": MODEL, "object": "model", "created": 0, "owned_by": "vllm", "root": MODEL}
        return {"object": "list", "data": [{**card, "parent": None, "max_model_len": 4096}]}

    def completions(self, body: dict) -> dict:
        logprobs = body.get("logprobs")
        if logprobs is not None and (not isinstance(logprobs, int) or logprobs < -1):
            raise BadRequest("`logprobs` must be a positive value or -1.")
        echo = bool(body.get("echo")) and not self.ignores_echo
        max_tokens = 16 if body.get("max_tokens") is None else body["max_tokens"]
        choices = []
        for seq in _prompts(body.get("prompt")):
            # prompt_logprobs: per position {token: Logprob} for the given token and the top k
            prompt_lp = [None] + [lm_logprobs(seq[j - 1]) for j in range(1, len(seq))]
            outputs = _greedy(seq, max_tokens if not (echo and max_tokens == 0) else 1)
            if echo and max_tokens == 0:
                token_ids, dists = seq, prompt_lp
            elif echo:
                token_ids = seq + [t for t, _ in outputs]
                dists = prompt_lp + [d for _, d in outputs]
            else:
                token_ids, dists = [t for t, _ in outputs], [d for _, d in outputs]
            lp = None
            if logprobs is not None:
                lp = self._logprobs(token_ids, dists, logprobs)
            choices.append(
                {
                    "index": len(choices),
                    "text": "".join(map(_text, token_ids)),
                    "logprobs": lp,
                    "finish_reason": "length",
                    "stop_reason": None,
                    "prompt_logprobs": None,
                }
            )
        n = sum(len(p) for p in _prompts(body.get("prompt")))
        usage = {"prompt_tokens": n, "completion_tokens": 0, "total_tokens": n}
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": choices,
            "usage": usage,
        }

    @staticmethod
    def _logprobs(token_ids: list[int], dists: list, k: int) -> dict:
        out: dict = {"text_offset": [], "token_logprobs": [], "tokens": [], "top_logprobs": []}
        at = 0
        for tok, dist in zip(token_ids, dists):
            out["tokens"].append(_text(tok))
            out["text_offset"].append(at)
            at += len(_text(tok))
            if dist is None:
                out["token_logprobs"].append(None)
                out["top_logprobs"].append(None)
                continue
            out["token_logprobs"].append(max(dist[tok], -9999.0))
            top = {_text(tok): max(dist[tok], -9999.0)}  # the token itself, then the top k
            top.update({_text(t): max(v, -9999.0) for t, v in _top(dist, k)})
            out["top_logprobs"].append(top)
        return out

    routes = {("GET", "/v1/models"): models, ("POST", "/v1/completions"): completions}


# --- SGLang -------------------------------------------------------------------------------------


class SGLangServer(_Handler):
    """SGLang's HTTP server: POST /v1/completions, POST /generate and GET /v1/models.

    /v1/completions after python/sglang/srt/entrypoints/openai/protocol.py at 004c82e
    (CompletionRequest refuses `max_tokens` <= 0, "max_tokens must be positive", a 400 with
    ErrorResponse) and serving_completions.py at 7190e6f (`logprob_start_len` is 0 only `if
    request.echo and request.logprobs`, else -1; return_logprob is `logprobs is not None`;
    top_logprobs_num is `logprobs`; with echo the answer's token_logprobs are the input token
    log-probs then the output ones, through utils.py to_openai_style_logprobs at 9e738db, whose
    text_offset is -1 throughout; choices indexed in order). A `logprob_start_len` of -1 scores
    from the last input token only (scheduler: `req.logprob_start_len = len(origin_input_ids) -
    1`), and input log-probs run from the start position with a null first
    (scheduler_output_processor_mixin.py at 004ec01: `[None] + input_token_logprobs[:-1]`), so
    with `logprobs` 0 the prompt is left unscored: one null for all of it. Newer SGLang skips
    input log-probs entirely there; either way no prompt log-probs come back.

    /generate takes GenerateReqInput (input_ids one list or a batch of lists, sampling_params
    with `max_new_tokens`, return_logprob, logprob_start_len default -1) and answers one dict per
    sequence, a list for a batch, with meta_info.input_token_logprobs as [log-prob, token id,
    text or null] entries; `max_new_tokens` 0 is prefill-only: no output token, and with
    logprob_start_len -1 no input log-probs either (the scheduler starts them past the input)."""

    def error_body(self, message: str) -> dict:
        return {"object": "error", "message": message, "type": "Bad Request", "code": 400}

    def models(self, _body) -> dict:
        card = {"id": MODEL, "object": "model", "created": 0, "owned_by": "sglang", "root": MODEL}
        return {"object": "list", "data": [{**card, "parent": None, "max_model_len": 4096}]}

    @staticmethod
    def _run(seq: list[int], start: int, max_new: int, top_k: int) -> dict:
        """One sequence's output ids and meta_info: input log-probs from `start` (a null first;
        none when `start` is past the input), the outputs' after them."""
        scored = range(start + 1, len(seq)) if start < len(seq) else range(0)
        inputs = [(None, seq[start])] if start < len(seq) else []
        inputs += [(lm_logprobs(seq[j - 1])[seq[j]], seq[j]) for j in scored]
        outputs = _greedy(seq, max_new)
        meta = {
            "prompt_tokens": len(seq),
            "completion_tokens": max_new,
            "finish_reason": {"type": "length", "length": max_new},
            "input_token_logprobs": [[lp, tok, None] for lp, tok in inputs],
            "output_token_logprobs": [[d[t], t, None] for t, d in outputs],
        }
        if top_k > 0:
            tops = [_top(lm_logprobs(seq[j - 1]), top_k) for j in scored]
            meta["input_top_logprobs"] = [None] * (len(inputs) > 0) + [
                [[v, t, None] for t, v in top] for top in tops
            ]
            meta["output_top_logprobs"] = [
                [[v, t, None] for t, v in _top(d, top_k)] for _, d in outputs
            ]
        return {"output_ids": [t for t, _ in outputs], "meta_info": meta}

    @staticmethod
    def _openai_logprobs(meta: dict, echo: bool) -> dict:
        """to_openai_style_logprobs: token log-probs (input ones under echo, then output), then
        top log-probs in the same order."""
        entries = (meta["input_token_logprobs"] if echo else []) + meta["output_token_logprobs"]
        tops = (meta.get("input_top_logprobs", []) if echo else []) + meta.get(
            "output_top_logprobs", []
        )
        return {
            "text_offset": [-1] * len(entries),  # "Not supported yet"
            "token_logprobs": [e[0] for e in entries],
            "tokens": [_text(e[1]) for e in entries],
            "top_logprobs": [None if t is None else {_text(x[1]): x[0] for x in t} for t in tops],
        }

    def completions(self, body: dict) -> dict:
        max_tokens = body.get("max_tokens", 16)
        if max_tokens <= 0:
            raise BadRequest(
                "1 validation error for CompletionRequest\nmax_tokens\n  Value error, "
                "max_tokens must be positive"
            )
        logprobs, echo = body.get("logprobs"), bool(body.get("echo"))
        choices = []
        for idx, seq in enumerate(_prompts(body.get("prompt"))):
            start = 0 if echo and logprobs else len(seq) - 1  # logprob_start_len 0 or -1
            ret = self._run(seq, start, max_tokens, logprobs or 0)
            lp = None if logprobs is None else self._openai_logprobs(ret["meta_info"], echo)
            text = "".join(map(_text, (seq if echo else []) + ret["output_ids"]))
            choices.append({"index": idx, "text": text, "logprobs": lp, "finish_reason": "length"})
        return {
            "id": uuid.uuid4().hex,
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "default"),
            "choices": choices,
            "usage": {"prompt_tokens": 0, "total_tokens": 0, "completion_tokens": 0},
        }

    def generate(self, body: dict) -> dict | list:
        ids = body.get("input_ids")
        single = isinstance(ids, list) and bool(ids) and isinstance(ids[0], int)
        params = body.get("sampling_params") or {}
        max_new = params.get("max_new_tokens", 128)
        if max_new < 0:
            raise BadRequest("max_new_tokens must be at least 0")
        start = body.get("logprob_start_len", -1)
        outs = []
        for seq in _prompts(ids):
            begin = start
            if start == -1:  # prefill-only requests start past the input: no input log-probs
                begin = len(seq) if max_new == 0 else len(seq) - 1
            ret = self._run(seq, begin, max_new, body.get("top_logprobs_num", 0))
            if not body.get("return_logprob"):
                ret["meta_info"] = {
                    k: v for k, v in ret["meta_info"].items() if "logprobs" not in k
                }
            ret["meta_info"]["id"] = uuid.uuid4().hex
            outs.append({"text": "".join(map(_text, ret["output_ids"])), **ret})
        return outs[0] if single else outs

    routes = {
        ("GET", "/v1/models"): models,
        ("POST", "/v1/completions"): completions,
        ("POST", "/generate"): generate,
    }


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], **attributes):
    """`handler` (a subclass made with `attributes`) on a free port of 127.0.0.1: yields
    `http://127.0.0.1:PORT/v1`."""
    cls = type(handler.__name__, (handler,), attributes)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), cls)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
