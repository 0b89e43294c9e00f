"""The `rollout` section: how the student samples its G responses per prompt, and with which
engine (uniopd.engine.rollout)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from uniopd.config.section import _Section


class RolloutConfig(_Section):
    group_size: int = Field(default=8, ge=1, description="Rollouts sampled per prompt (G).")
    prompts_per_batch: int = Field(default=16, ge=1, description="Prompts per rollout batch (B).")
    temperature: float | None = Field(
        default=None,
        gt=0,
        description="Sampling temperature (None = the student checkpoint's generation_config.json "
        "value, else 1).",
    )
    top_p: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Nucleus sampling mass, 1 = off (None = the checkpoint's "
        "generation_config.json value, else 1).",
    )
    top_k: int | None = Field(
        default=None,
        ge=0,
        description="Sample from the k most likely tokens, 0 = off (None = the checkpoint's "
        "generation_config.json value, else 0). Always passed to the engine explicitly: no "
        "library default (transformers' 50) applies.",
    )
    max_new_tokens: int = Field(default=128, ge=1, description="Longest response, in tokens.")
    stop_token_ids: list[Annotated[int, Field(ge=0)]] = Field(
        default=[],
        description="Extra tokens that end a response (kept in it), besides the tokenizer's EOS "
        "and the eos_token_id(s) of the checkpoint's generation_config.json.",
    )
    engine: str = Field(
        default="hf",
        min_length=1,
        description="Rollout engine: hf (HF generate on padded batches, default; any device, "
        "FSDP too), hf-paged (transformers continuous batching over a paged KV cache, bounded by "
        "max_batch_tokens), vllm (colocated vLLM with sleep mode, GPU only: pip install "
        "'uniopd[gpu]'), or a plugin's (`uniopd.engines` entry points).",
    )
    max_batch_rows: int = Field(
        default=256, ge=1, description="hf: rollouts per generate call (padded batch)."
    )
    max_batch_tokens: int | None = Field(
        default=None,
        ge=1,
        description="hf-paged: tokens per forward of the continuous batch (None = transformers' "
        "choice from free GPU memory).",
    )
    gpu_memory_utilization: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="vllm: share of the GPU for its weights and KV cache; the rest stays for "
        "training (the engine sleeps while the teachers and the update run).",
    )
