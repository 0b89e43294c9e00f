"""The `teacher_server` section of an experiment file: how teachers served over HTTP
(`teachers.<domain>: http://host:port/v1`) are called (docs/scale.md, "Teachers as services").

    teacher_server: {timeout_s: 60, retries: 3, backoff_s: 0.5, max_concurrency: 4, rows_per_request: 8}
    teacher_server: {api: sglang_generate}       # SGLang's native /generate, as the release asks
    teacher_server: {max_tokens: 1}              # SGLang's /v1/completions (it refuses 0)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from uniopd.config.section import _Section


class TeacherServerConfig(_Section):
    api: Literal["completions", "sglang_generate"] = Field(
        default="completions",
        description="How teachers are asked for the log-probs of given tokens. `completions`: "
        "POST {url}/v1/completions with echo and prompt log-probs (uniopd serve-teacher, vLLM, "
        "SGLang); `sglang_generate`: SGLang's native POST {url}/generate with max_new_tokens 0 "
        "and logprob_start_len 0, reading meta_info.input_token_logprobs (what the Uni-OPD "
        "release sends). Either way a few tokens are scored at start-up, and a server whose "
        "answer has the wrong shape stops the run before any training.",
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one request may take (connecting, scoring, answering) before it "
        "counts as failed and is retried, plus timeout_per_token_s per token it carries.",
    )
    timeout_per_token_s: float = Field(
        default=0.001,
        ge=0,
        description="Seconds added to timeout_s for each token of a request (prompt + response "
        "tokens of all its rollouts): a request of T tokens may take timeout_s + T x this. The "
        "default adds 1 s per 1,000 tokens, so a small request keeps about timeout_s while 8 "
        "rollouts of 20k tokens get 220 s.",
    )
    retries: int = Field(
        default=3,
        ge=0,
        description="Retries of a request that failed to connect, timed out or got an HTTP 5xx / "
        "429 answer; when they are spent its rollouts get no teacher scores (NaN: loss mask 0, "
        "counted in teacher/failed_rollouts) and the run goes on.",
    )
    backoff_s: float = Field(
        default=0.5,
        ge=0,
        description="Wait before the first retry; it doubles at each further retry.",
    )
    max_concurrency: int = Field(
        default=4,
        ge=1,
        description="Requests in flight at once to one teacher server (it batches concurrent "
        "requests into one forward pass).",
    )
    rows_per_request: int = Field(
        default=8,
        ge=1,
        description="Rollouts per request (each sent as prompt + response token ids).",
    )
    max_tokens: int = Field(
        default=0,
        ge=0,
        le=1,
        description="`max_tokens` sent with each completions request: 0 scores the tokens only "
        "(uniopd serve-teacher, vLLM); SGLang's /v1/completions refuses 0 (as did older vLLM), "
        "so set 1 for it (the one token it then generates is ignored). Unused with api "
        "sglang_generate, which asks for no new token.",
    )
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="At start-up, seconds to wait for each teacher server to list its model "
        "(GET /v1/models) and to score a few probe tokens; a server that does not answer, or "
        "answers in the wrong shape, stops the run before any rollout.",
    )
