"""One causal LM served over HTTP for the log-probs of given tokens: the OpenAI completions
interface that vLLM and SGLang expose, so a teacher can live in another process or machine
(`uniopd serve-teacher`; the client is uniopd.engine.teacher_client).

    POST /v1/completions {"model": M, "prompt": [ids] | [[ids], ...], "max_tokens": 0,
                          "echo": true, "logprobs": 0}
      -> {"id", "object": "text_completion", "created", "model",
          "choices": [{"index": i, "text", "finish_reason": "length",
                       "logprobs": {"tokens", "token_logprobs": [null, lp_1, ...],
                                    "top_logprobs": [null, {token: lp_1}, ...], "text_offset"}}],
          "usage": {"prompt_tokens", "completion_tokens": 0, "total_tokens"}}
    GET /v1/models   {"object": "list", "data": [{"id": M, "object": "model", ...}]}
    GET /health      200 once the model is loaded
    GET /metrics     counters (requests, prompts, forwards, tokens) in Prometheus text

`token_logprobs[j]` is log p(ids[j] | ids[:j]); the first is null (nothing predicts it). The
server only scores: `max_tokens` must be 0 and `echo` true. Concurrent requests are batched: each
request thread queues its prompts, and one worker thread takes what is queued, up to a token
budget (rows x longest prompt), into one forward pass, log-probs computed in chunks
(uniopd.engine.logprobs). Everything is the standard library's (http.server) plus torch.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from uniopd.engine.logprobs import CHUNK_TOKENS, response_logprobs
from uniopd.engine.sequences import pack

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 << 20  # a request larger than this is refused (413)
ANSWER_TIMEOUT_S = 600.0  # a request waiting longer than this for its forward pass gets a 503


class BadRequest(ValueError):
    """A request this server cannot answer (HTTP 400)."""


@dataclass
class _Prompt:
    ids: list[int]
    done: threading.Event = field(default_factory=threading.Event)
    logprobs: list[float] | None = None
    error: str | None = None


class BatchScorer:
    """A worker thread that scores queued prompts in batches of at most `max_batch_tokens` cells
    (rows x longest prompt; a longer prompt goes alone). After the first prompt of a batch it
    waits `wait_s` for others, so requests sent together share a forward pass."""

    def __init__(
        self,
        model,
        max_batch_tokens: int = 16384,
        chunk_tokens: int = CHUNK_TOKENS,
        wait_s: float = 0.002,
    ):
        self.model, self.max_batch_tokens = model, max_batch_tokens
        self.chunk_tokens, self.wait_s = chunk_tokens, wait_s
        self.device = next(model.parameters()).device
        self.counts = {"requests": 0, "prompts": 0, "forwards": 0, "tokens": 0, "errors": 0}
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Prompt] = queue.Queue()
        self._held: _Prompt | None = None  # taken from the queue, left for the next batch
        threading.Thread(target=self._work, name="batch-scorer", daemon=True).start()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def score(self, prompts: list[list[int]], timeout_s: float = ANSWER_TIMEOUT_S) -> list:
        """Log-probs of every token of each prompt after the first (waits for the worker)."""
        items = [_Prompt(ids) for ids in prompts]
        self.count("requests")
        self.count("prompts", len(items))
        for item in items:
            self._queue.put(item)
        deadline = time.monotonic() + timeout_s
        for item in items:
            if not item.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no forward pass within {timeout_s:.0f} s")
            if item.error is not None:
                raise RuntimeError(item.error)
        return [item.logprobs for item in items]

    def _batch(self) -> list[_Prompt]:
        first = self._held or self._queue.get()
        self._held = None
        batch, width = [first], len(first.ids)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return batch
            wider = max(width, len(item.ids))
            if (len(batch) + 1) * wider > self.max_batch_tokens:
                self._held = item
                return batch
            batch.append(item)
            width = wider

    def _work(self) -> None:
        while True:
            batch = self._batch()
            try:
                with torch.no_grad():
                    seqs = pack(
                        [p.ids[:1] for p in batch], [p.ids[1:] for p in batch], pad_id=0
                    ).to(self.device)
                    logp = response_logprobs(self.model, seqs, chunk_tokens=self.chunk_tokens)
                values = logp.float().cpu().tolist()
                for p, row in zip(batch, values):
                    p.logprobs = row[: len(p.ids) - 1]
                self.count("forwards")
                self.count("tokens", sum(len(p.ids) for p in batch))
            except Exception as exc:  # noqa: BLE001 - the request fails, the server stays up
                log.exception("forward pass over %d prompts failed", len(batch))
                self.count("errors")
                for p in batch:
                    p.error = f"{type(exc).__name__}: {exc}"
            for p in batch:
                p.done.set()


def _prompts(body: dict, vocab_size: int) -> list[list[int]]:
    """The request's prompts as lists of token ids, checked."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        prompt = [prompt]
    if (
        not isinstance(prompt, list)
        or not prompt
        or not all(isinstance(p, list) and p for p in prompt)
    ):
        raise BadRequest(
            "prompt: expected token ids, [id, ...] or [[id, ...], ...] (this server does not "
            "tokenize text)"
        )
    for p in prompt:
        for t in p:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
                raise BadRequest(f"prompt: token {t!r} is not an id in [0, {vocab_size})")
    if body.get("max_tokens", 16) != 0:
        raise BadRequest("max_tokens: this server only scores given tokens; send max_tokens 0")
    if body.get("echo") is not True:
        raise BadRequest("echo: this server returns the given tokens' log-probs; send echo true")
    return prompt


class TeacherServer:
    """The served model: its name, tokenizer (for the echoed text; token ids without one) and
    batching worker."""

    def __init__(self, model, name: str, tokenizer=None, **scorer):
        self.name, self.tokenizer = name, tokenizer
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.scorer = BatchScorer(model, **scorer)
        self.created = int(time.time())

    def _tokens(self, ids: list[int]) -> list[str]:
        if self.tokenizer is None:
            return [f"token_id:{t}" for t in ids]  # vLLM's spelling when it returns ids
        return [str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)]

    def completions(self, body: dict) -> dict:
        prompts = _prompts(body, self.vocab_size)
        scored = self.scorer.score(prompts)
        choices = []
        for i, (ids, logp) in enumerate(zip(prompts, scored)):
            tokens = self._tokens(ids)
            offsets, at = [], 0
            for t in tokens:
                offsets.append(at)
                at += len(t)
            choices.append(
                {
                    "index": i,
                    "text": self.tokenizer.decode(ids) if self.tokenizer is not None else "",
                    "logprobs": {
                        "tokens": tokens,
                        "token_logprobs": [None, *logp],
                        "top_logprobs": [None, *({t: v} for t, v in zip(tokens[1:], logp))],
                        "text_offset": offsets,
                    },
                    "finish_reason": "length",
                }
            )
        n = sum(len(p) for p in prompts)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": choices,
            "usage": {"prompt_tokens": n, "completion_tokens": 0, "total_tokens": n},
        }

    def models(self) -> dict:
        card = {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "uniopd",
            "vocab_size": self.vocab_size,
        }
        return {"object": "list", "data": [card]}

    def metrics(self) -> str:
        with self.scorer._lock:
            counts = dict(self.scorer.counts)
        return "".join(f"uniopd_teacher_{k}_total {v}\n" for k, v in counts.items())


def _handler(server: TeacherServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, payload: dict | str) -> None:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            data = text.encode()
            self.send_response(code)
            kind = "text/plain" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str) -> None:
            kind = "invalid_request_error" if code < 500 else "server_error"
            self._send(code, {"error": {"message": message, "type": kind, "code": code}})

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0].rstrip("/")
            if path == "/v1/models":
                self._send(200, server.models())
            elif path == "/health":
                self._send(200, "ok\n")
            elif path == "/metrics":
                self._send(200, server.metrics())
            else:
                self._error(404, f"no route GET {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0].rstrip("/") != "/v1/completions":
                return self._error(404, f"no route POST {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._error(413, f"request body over {MAX_BODY_BYTES} bytes")
            try:
                body = json.loads(self.rfile.read(length))
                if not isinstance(body, dict):
                    raise BadRequest("expected a JSON object")
                self._send(200, server.completions(body))
            except (BadRequest, json.JSONDecodeError) as exc:
                self._error(400, str(exc))
            except TimeoutError as exc:
                self._error(503, str(exc))
            except Exception as exc:  # noqa: BLE001 - a 500 for the client to retry
                self._error(500, f"{type(exc).__name__}: {exc}")

        def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's signature
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def make_http_server(server: TeacherServer, host: str, port: int) -> ThreadingHTTPServer:
    """A bound HTTP server for `server` (port 0 picks a free port: `.server_address`);
    call `.serve_forever()`."""
    httpd = ThreadingHTTPServer((host, port), _handler(server))
    httpd.daemon_threads = True
    return httpd
