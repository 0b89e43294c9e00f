"""The `teacher_server` section of an experiment file: how teachers served over HTTP
(`teachers.<domain>: http://host:port/v1`) are called (docs/scale.md, "Teachers as services").

    teacher_server: {timeout_s: 60, retries: 3, backoff_s: 0.5, max_concurrency: 4, rows_per_request: 8}
"""

from __future__ import annotations

from pydantic import Field

from uniopd.config.section import _Section


class TeacherServerConfig(_Section):
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one request may take (connecting, scoring, answering) before it "
        "counts as failed and is retried.",
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
        description="`max_tokens` sent with each request: 0 scores the tokens only (uniopd "
        "serve-teacher, SGLang); vLLM refuses 0, so set 1 for a vLLM server (the one token it "
        "then generates is ignored).",
    )
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="At start-up, seconds to wait for each teacher server to list its model "
        "(GET /v1/models); a server that does not answer stops the run before any rollout.",
    )
