"""A teacher behind an HTTP server that scores given tokens: the OpenAI completions interface
with prompt log-probs (`uniopd serve-teacher`, vLLM, SGLang) or SGLang's native /generate
(`teacher_server.api`; wire formats in uniopd.engine.teacher_protocols).

At start-up, `connect` asks for the model list and then scores a few tokens: a server that does
not answer, or answers in the wrong shape, stops the run there (TeacherServerError naming the URL
and what the answer held) rather than masking every rollout of it later.

Each rollout goes as its real tokens, prompt then response without padding, in requests of
`rows_per_request` rollouts, `max_concurrency` requests at a time, each allowed `timeout_s` plus
`timeout_per_token_s` per token it carries. Of each answer only the last `response_length`
log-probs of the rollout's own tokens are read. Failures never stop the run and never shift a
score onto the wrong token:

- an answer for a rollout whose log-probs are missing, of the wrong count, or not finite numbers
  <= 0 gives that rollout NaN scores (the objectives turn them into loss mask 0);
- a request that cannot connect, times out or gets HTTP 5xx / 429 is retried with exponential
  backoff; when the retries are spent (or the answer is any other HTTP error, or not JSON) all of
  its rollouts get NaN.

Every rollout left without scores is counted (`failed_rows`) and logged.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import torch

from uniopd.engine.sequences import SequenceBatch
from uniopd.engine.teacher_protocols import (
    BadAnswer,
    CompletionsAPI,
    SGLangGenerateAPI,
    api_base,
    make_api,
)

log = logging.getLogger(__name__)

RETRIED_HTTP = {429, 500, 502, 503, 504}


# the start-up probe's tokens: ids every vocabulary has; what matters is the answer's shape
PROBE_IDS = [0, 1, 2, 3]


class TeacherServerError(RuntimeError):
    """A teacher server that cannot be used at all: unreachable at start-up, or answering the
    start-up probe in the wrong shape."""


class ServedTeacher:
    def __init__(
        self,
        url: str,
        *,
        api: str = "completions",
        timeout_s: float = 60.0,
        timeout_per_token_s: float = 0.001,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_concurrency: int = 4,
        rows_per_request: int = 8,
        max_tokens: int = 0,
        model: str | None = None,
    ):
        """`api`: `completions` or `sglang_generate` (uniopd.engine.teacher_protocols);
        `model`: the name sent with each request (default: the first model the server lists,
        read by `connect`)."""
        self.url, self.base, self.model = url, api_base(url), model
        self.api = make_api(api, max_tokens)
        self.timeout_s, self.timeout_per_token_s = timeout_s, timeout_per_token_s
        self.retries, self.backoff_s = retries, backoff_s
        self.max_concurrency, self.rows_per_request = max_concurrency, rows_per_request
        self.vocab_size: int | None = None  # the served model's, when its server says it
        self.failed_rows = 0  # rollouts left without scores, over the whole run
        self.retried = 0  # requests sent again
        self._lock = threading.Lock()

    def request_timeout(self, tokens: int) -> float:
        """Seconds a request carrying `tokens` tokens may take: a long request is a long forward
        pass (and waits behind others in the server's batch), so the limit grows with it."""
        return self.timeout_s + self.timeout_per_token_s * tokens

    def connect(self, timeout_s: float = 10.0) -> str:
        """The served model's name (GET /v1/models), once a few tokens scored through the
        configured api came back in the right shape; TeacherServerError naming the URL and what
        was wrong otherwise."""
        try:
            with urllib.request.urlopen(self.base + "/models", timeout=timeout_s) as resp:
                listed = json.loads(resp.read())
            names = [m["id"] for m in listed["data"]]
        except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
            raise TeacherServerError(
                f"teacher server {self.url}: no model list at {self.base}/models "
                f"({type(exc).__name__}: {exc}); start it first (uniopd serve-teacher MODEL "
                "--port P) or fix the URL"
            ) from exc
        if not names:
            raise TeacherServerError(f"teacher server {self.url}: it lists no model")
        if self.model is None:
            self.model = str(names[0])
        # uniopd's own server says how many token ids its model scores (vLLM's and SGLang's
        # lists do not): the caller checks it against the student's
        served: dict = next((m for m in listed["data"] if m["id"] == self.model), {})
        size = served.get("vocab_size")
        self.vocab_size = int(size) if isinstance(size, int) else None
        self._probe(max(timeout_s, self.request_timeout(len(PROBE_IDS))))
        return self.model

    def _probe(self, timeout_s: float) -> None:
        """Score PROBE_IDS once; a server whose answer has the wrong shape would leave every
        rollout without teacher scores, so it stops the run here, before any training."""
        where = f"teacher server {self.url}: {self.api.name} probe ({len(PROBE_IDS)} tokens)"
        body, problem, said = self._post([PROBE_IDS], timeout_s)
        if body is None:
            raise TeacherServerError(
                f"{where} at {self.api.endpoint(self.url)} got {problem}"
                f"{': ' + said if said else ''}{_hint(self.api, problem, said)}"
            )
        try:
            (row,) = self.api.read_all(_json(body), [PROBE_IDS])
            if isinstance(row, BadAnswer):
                raise row
        except BadAnswer as exc:
            raise TeacherServerError(
                f"{where}: the answer has the wrong shape: {exc.detail}; {self.api.expects}"
            ) from None

    @torch.no_grad()
    def logprobs(self, batch: SequenceBatch) -> torch.Tensor:
        """log p(o_t | q, o_<t) of every response token `[N, T]`, 0 on padding, NaN on the rows
        the server did not score."""
        p = batch.prompt_width
        ids = batch.input_ids_N_L.cpu()
        prompt_len = batch.attention_mask_N_L[:, :p].sum(-1).long().tolist()
        response_len = batch.response_mask_N_T.sum(-1).long().tolist()
        n, t = batch.response_mask_N_T.shape
        out = torch.zeros((n, t))
        out[[i for i in range(n) if response_len[i] > 0 and not prompt_len[i]]] = float("nan")
        # a row without a prompt token has nothing to predict its first response token
        rows = [i for i in range(n) if response_len[i] > 0 and prompt_len[i] > 0]
        tokens = {i: ids[i, p - prompt_len[i] : p + response_len[i]].tolist() for i in rows}
        groups = [
            rows[s : s + self.rows_per_request] for s in range(0, len(rows), self.rows_per_request)
        ]
        why: Counter[str] = Counter()
        with ThreadPoolExecutor(max(1, min(self.max_concurrency, len(groups)))) as pool:
            answers = pool.map(lambda g: self._score([tokens[i] for i in g]), groups)
            for group, (values, reasons) in zip(groups, answers):
                for i, row, reason in zip(group, values, reasons):
                    if row is None:
                        out[i] = float("nan")
                        why[reason] += 1
                    else:
                        out[i, : response_len[i]] = torch.tensor(row[-response_len[i] :])
        failed = sum(why.values())
        if failed:
            self.failed_rows += failed
            log.warning(
                "teacher server %s: %d of %d rollouts got no scores (%s); their tokens are masked",
                self.url,
                failed,
                len(rows),
                ", ".join(f"{k}: {v}" for k, v in sorted(why.items())),
            )
        return out.to(batch.input_ids_N_L.device)

    def _score(self, seqs: list[list[int]]) -> tuple[list, list[str]]:
        """(per sequence: log-probs of its tokens after the first, or None; the reason of each
        None)."""
        body, problem, _ = self._post(seqs, self.request_timeout(sum(map(len, seqs))))
        if body is None:
            return [None] * len(seqs), [problem] * len(seqs)
        try:
            rows = self.api.read_all(_json(body), seqs)
        except BadAnswer as exc:  # not JSON, or not an answer of this api at all
            return [None] * len(seqs), [exc.reason] * len(seqs)
        values = [None if isinstance(r, BadAnswer) else r for r in rows]
        return values, [r.reason if isinstance(r, BadAnswer) else "" for r in rows]

    def _post(self, seqs: list[list[int]], timeout_s: float) -> tuple[bytes | None, str, str]:
        """The answer's body, or None, why (short) and what the server said, after the
        retries."""
        data = json.dumps(self.api.payload(self.model, seqs)).encode()
        problem, said = "", ""
        for attempt in range(self.retries + 1):
            if attempt:
                with self._lock:
                    self.retried += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self.api.endpoint(self.url),
                data=data,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                    return resp.read(), "", ""
            except urllib.error.HTTPError as exc:
                problem, said = f"HTTP {exc.code}", _error_text(exc)
                if exc.code not in RETRIED_HTTP:
                    return None, problem, said
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
                problem = "unreachable" if not isinstance(exc, TimeoutError) else "timed out"
                reason = getattr(exc, "reason", None)
                if isinstance(reason, TimeoutError):
                    problem = "timed out"
        return None, problem, said


def _hint(api: CompletionsAPI | SGLangGenerateAPI, problem: str, said: str) -> str:
    """What to change when the probe got an error answer the servers are known to give."""
    if isinstance(api, CompletionsAPI) and problem == "HTTP 400" and "max_tokens" in said:
        if api.max_tokens == 0:  # SGLang's CompletionRequest: "max_tokens must be positive"
            return (
                "; SGLang's /v1/completions refuses max_tokens 0: set teacher_server.max_tokens: 1"
            )
        return "; uniopd serve-teacher only scores: set teacher_server.max_tokens: 0"
    if problem == "HTTP 404":
        return f"; no such route: is teacher_server.api ({api.name}) right for this server?"
    return ""


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        raise BadAnswer("malformed answer", f"not JSON: {body[:160]!r}") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    """The message of an error answer (vLLM and SGLang put it in `message` or
    `error.message`), else the start of its body."""
    try:
        raw = exc.read()[:4000]
    except OSError:
        return ""
    try:
        body = json.loads(raw)
        inner = body.get("error", body) if isinstance(body, dict) else body
        message = inner.get("message") if isinstance(inner, dict) else None
        text = str(message if message is not None else body)
    except ValueError:
        text = raw.decode(errors="replace")
    return " ".join(text.split())[:300]  # one line, for the error message that quotes it
