"""A teacher behind an HTTP server that speaks the OpenAI completions interface with prompt
log-probs (`uniopd serve-teacher`, vLLM, SGLang; protocol in uniopd.engine.teacher_server).

Each rollout goes as its real tokens, prompt then response without padding, in requests of
`rows_per_request` rollouts, `max_concurrency` requests at a time. Of each answer only the last
`response_length` log-probs of the rollout's own tokens are read. Failures never stop the run and
never shift a score onto the wrong token:

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
import math
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import torch

from uniopd.engine.sequences import SequenceBatch

log = logging.getLogger(__name__)

RETRIED_HTTP = {429, 500, 502, 503, 504}


class TeacherServerError(RuntimeError):
    """A teacher server that cannot be used at all (unreachable at start-up)."""


def api_base(url: str) -> str:
    """`http://host:port`, `http://host:port/` and `http://host:port/v1` -> `http://host:port/v1`."""
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


class ServedTeacher:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_concurrency: int = 4,
        rows_per_request: int = 8,
        max_tokens: int = 0,
        model: str | None = None,
    ):
        """`model`: the name sent with each request (default: the first model the server lists,
        read by `connect`)."""
        self.url, self.base, self.model = url, api_base(url), model
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.max_concurrency, self.rows_per_request = max_concurrency, rows_per_request
        self.max_tokens = max_tokens
        self.vocab_size: int | None = None  # the served model's, when its server says it
        self.failed_rows = 0  # rollouts left without scores, over the whole run
        self.retried = 0  # requests sent again
        self._lock = threading.Lock()

    def connect(self, timeout_s: float = 10.0) -> str:
        """The served model's name (GET /v1/models); TeacherServerError naming the URL if the
        server does not answer with a model list."""
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
        return self.model

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
        payload = {
            "model": self.model,
            "prompt": seqs,
            "max_tokens": self.max_tokens,
            "echo": True,
            "logprobs": 0,
            "temperature": 1.0,
        }
        body, problem = self._post(json.dumps(payload).encode())
        if body is None:
            return [None] * len(seqs), [problem] * len(seqs)
        try:
            choices = json.loads(body)["choices"]
            assert isinstance(choices, list)
        except Exception:  # noqa: BLE001 - not JSON, or not a completions answer
            return [None] * len(seqs), ["malformed answer"] * len(seqs)
        by_index: dict[int, list] = {}
        for pos, c in enumerate(choices):
            index = c.get("index", pos) if isinstance(c, dict) else None
            if isinstance(index, int) and not isinstance(index, bool):
                by_index.setdefault(index, []).append(c)
        values, reasons = [], []
        for k, seq in enumerate(seqs):
            got = by_index.get(k, [])
            row, reason = (None, "no answer") if len(got) != 1 else self._read(got[0], len(seq))
            values.append(row)
            reasons.append(reason)
        return values, reasons

    def _read(self, choice: dict, n: int) -> tuple[list[float] | None, str]:
        """The log-probs of tokens 1..n-1 of one answer, or None and why."""
        try:
            lp = choice["logprobs"]["token_logprobs"]
        except (KeyError, TypeError):
            return None, "malformed answer"
        if not isinstance(lp, list) or not n <= len(lp) <= n + self.max_tokens:
            return None, "wrong length"
        row = lp[1:n]  # the first token has no log-prob (null); what follows n was generated
        for v in row:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None, "not a number"
            if not math.isfinite(v) or v > 1e-3:  # a log-prob is <= 0 (rounding aside)
                return None, "not a log-prob"
        return [float(v) for v in row], ""

    def _post(self, data: bytes) -> tuple[bytes | None, str]:
        """The answer's body, or None and why, after the retries."""
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                with self._lock:
                    self.retried += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self.base + "/completions",
                data=data,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    return resp.read(), ""
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code not in RETRIED_HTTP:
                    return None, problem
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
                problem = "unreachable" if not isinstance(exc, TimeoutError) else "timed out"
                reason = getattr(exc, "reason", None)
                if isinstance(reason, TimeoutError):
                    problem = "timed out"
        return None, problem
