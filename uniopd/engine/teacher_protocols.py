"""How a served teacher is asked for the log-probs of given tokens, and how its answer is read
(`teacher_server.api`; the client that sends the requests is uniopd.engine.teacher_client).

`completions`: the OpenAI completions interface with prompt log-probs, which `uniopd
serve-teacher`, vLLM and SGLang all serve:

    POST {url}/v1/completions {"model", "prompt": [[ids], ...], "max_tokens": 0 | 1,
                               "echo": true, "logprobs": 1, "temperature": 1.0}
      -> {"choices": [{"index": i, "logprobs": {"token_logprobs": [null, lp_1, ...]}}, ...]}

`logprobs` is 1, not 0: SGLang computes prompt log-probs only when `echo and logprobs` is truthy
(python/sglang/srt/entrypoints/openai/serving_completions.py at 7190e6f: `logprob_start_len = 0`
if so, else -1, which leaves the prompt unscored), while vLLM passes `logprobs` on as
`prompt_logprobs` under `echo` (vllm/entrypoints/openai/completion/protocol.py at 002032e), where 0
and 1 both give each given token's own log-prob. SGLang's CompletionRequest refuses `max_tokens`
0 ("max_tokens must be positive", protocol.py at 004c82e): against it `teacher_server.max_tokens`
is 1, and the answer then holds one generated token after the given ones, which is ignored.

`sglang_generate`: SGLang's native endpoint, as the Uni-OPD release asks its teachers
(miles/Uni_OPD_utils/OPD_reward/reward_manager.py at 08fcec0):

    POST {url}/generate {"input_ids": [[ids], ...], "sampling_params": {"max_new_tokens": 0,
                         "temperature": 1.0}, "return_logprob": true, "logprob_start_len": 0}
      -> [{"meta_info": {"input_token_logprobs": [[null, id_0, null], [lp_1, id_1, null], ...]}}]

Each entry names its token id, so a row is accepted only when those ids are the ids sent.
"""

from __future__ import annotations

import math
from typing import Any

API_NAMES = ("completions", "sglang_generate")


class BadAnswer(ValueError):
    """The answer for one sequence (or the whole body) has the wrong shape. `reason` is short
    (rollouts are counted by it in the client's warnings); `detail` says what was found."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def api_base(url: str) -> str:
    """`http://host:port`, `http://host:port/` and `http://host:port/v1` -> `http://host:port/v1`."""
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _checked(values: list, where: str) -> list[float]:
    """`values` as floats, each a log-prob (finite, <= 0 but for rounding)."""
    for j, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise BadAnswer("not a number", f"{where}[{j + 1}] is {_short(v)}, not a number")
        if not math.isfinite(v) or v > 1e-3:
            raise BadAnswer("not a log-prob", f"{where}[{j + 1}] is {v}, not a log-prob (<= 0)")
    return [float(v) for v in values]


class CompletionsAPI:
    name = "completions"
    expects = (
        "expected choices[i].logprobs.token_logprobs with one value per given token, the first "
        "null (OpenAI completions with echo and prompt log-probs, as uniopd serve-teacher, vLLM "
        "and SGLang answer)"
    )

    def __init__(self, max_tokens: int = 0):
        self.max_tokens = max_tokens

    def endpoint(self, url: str) -> str:
        return api_base(url) + "/completions"

    def payload(self, model: str | None, seqs: list[list[int]]) -> dict:
        return {
            "model": model,
            "prompt": seqs,
            "max_tokens": self.max_tokens,
            "echo": True,
            "logprobs": 1,  # SGLang scores the prompt only when this is truthy (module docstring)
            "temperature": 1.0,
        }

    def read_all(self, body: Any, seqs: list[list[int]]) -> list[list[float] | BadAnswer]:
        """Per sequence: the log-probs of its tokens after the first, or why there are none.
        Choices are matched by their `index` (a server may answer out of order)."""
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list):
            raise BadAnswer("malformed answer", f"no choices list in {_short(body)}")
        by_index: dict[int, list] = {}
        for pos, c in enumerate(choices):
            index = c.get("index", pos) if isinstance(c, dict) else None
            if isinstance(index, int) and not isinstance(index, bool):
                by_index.setdefault(index, []).append(c)
        rows: list[list[float] | BadAnswer] = []
        for k, seq in enumerate(seqs):
            got = by_index.get(k, [])
            if len(got) != 1:
                rows.append(BadAnswer("no answer", f"{len(got)} choices with index {k}"))
                continue
            try:
                rows.append(self._read(got[0], seq, k))
            except BadAnswer as exc:
                rows.append(exc)
        return rows

    def _read(self, choice: dict, seq: list[int], k: int) -> list[float]:
        where = f"choices[{k}].logprobs.token_logprobs"
        try:
            lp = choice["logprobs"]["token_logprobs"]
        except (KeyError, TypeError):
            raise BadAnswer("malformed answer", f"no {where} in {_short(choice)}") from None
        n = len(seq)
        if not isinstance(lp, list) or not n <= len(lp) <= n + self.max_tokens:
            count = len(lp) if isinstance(lp, list) else _short(lp)
            want = f"{n}" if not self.max_tokens else f"{n} to {n + self.max_tokens}"
            raise BadAnswer(
                "wrong length", f"{where} holds {count} values for {n} given tokens, not {want}"
            )
        # the first token has no log-prob (null); what follows the n given tokens was generated
        return _checked(lp[1:n], where)


class SGLangGenerateAPI:
    name = "sglang_generate"
    expects = (
        "expected a list with, per sequence, meta_info.input_token_logprobs: one [log-prob, "
        "token id, text] entry per given token, the first log-prob null (SGLang's /generate "
        "with logprob_start_len 0)"
    )

    def endpoint(self, url: str) -> str:
        return api_base(url).removesuffix("/v1") + "/generate"

    def payload(self, model: str | None, seqs: list[list[int]]) -> dict:
        # SGLang's native route serves one model and takes no model name
        return {
            "input_ids": seqs,
            "sampling_params": {"max_new_tokens": 0, "temperature": 1.0},
            "return_logprob": True,
            "logprob_start_len": 0,
        }

    def read_all(self, body: Any, seqs: list[list[int]]) -> list[list[float] | BadAnswer]:
        """Per sequence (SGLang answers a batch as a list in request order): the log-probs of
        its tokens after the first, or why there are none."""
        items = [body] if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise BadAnswer("malformed answer", f"not a list of answers: {_short(body)}")
        rows: list[list[float] | BadAnswer] = []
        for k, seq in enumerate(seqs):
            if k >= len(items):
                rows.append(BadAnswer("no answer", f"{len(items)} answers for {len(seqs)} rows"))
                continue
            try:
                rows.append(self._read(items[k], seq, k))
            except BadAnswer as exc:
                rows.append(exc)
        return rows

    def _read(self, item: Any, seq: list[int], k: int) -> list[float]:
        where = f"[{k}].meta_info.input_token_logprobs"
        try:
            entries = item["meta_info"]["input_token_logprobs"]
        except (KeyError, TypeError):
            raise BadAnswer("malformed answer", f"no {where} in {_short(item)}") from None
        n = len(seq)
        if not isinstance(entries, list) or len(entries) != n:
            count = len(entries) if isinstance(entries, list) else _short(entries)
            raise BadAnswer(
                "wrong length", f"{where} holds {count} entries for {n} given tokens, not {n}"
            )
        ids = [e[1] if isinstance(e, list) and len(e) >= 2 else None for e in entries]
        if ids != seq:
            first = next(j for j, (a, b) in enumerate(zip(ids, seq)) if a != b)
            raise BadAnswer(
                "wrong tokens",
                f"{where}[{first}] is {_short(entries[first])}, not the sent id {seq[first]}",
            )
        return _checked([e[0] for e in entries[1:]], where)


def make_api(name: str, max_tokens: int = 0) -> CompletionsAPI | SGLangGenerateAPI:
    if name == "completions":
        return CompletionsAPI(max_tokens)
    if name == "sglang_generate":
        return SGLangGenerateAPI()
    raise ValueError(f"teacher server api {name!r}: expected one of {', '.join(API_NAMES)}")
