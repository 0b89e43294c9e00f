"""The `rollout` section: how the student samples its G responses per prompt, and with which
engine (uniopd.engine.rollout)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from uniopd.config.section import _Section, conflict


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
        "max_batch_tokens), hf-static (a decode loop of its own over a preallocated cache; text "
        "students), hf-static-procs (hf-static in several CPU processes at once, for small "
        "students on a CPU), vllm (colocated vLLM with sleep mode, GPU only: pip install "
        "'uniopd[gpu]'), or a plugin's (`uniopd.engines` entry points).",
    )
    max_batch_rows: int = Field(
        default=256, ge=1, description="hf: rollouts per generate call (padded batch)."
    )
    processes: int | None = Field(
        default=None,
        ge=1,
        description="hf-static-procs: CPU processes that decode at once, one thread and a share "
        "of the rows each (None = the CPUs this process may use, over the run's processes). "
        "Another number samples another random stream.",
    )
    # hf-paged: transformers' ContinuousBatchingConfig fields, in their meaning (transformers
    # 5.25, generation/continuous_batching/cache.py, PagedAttentionMemoryHandler)
    max_batch_tokens: int | None = Field(
        default=None,
        ge=1,
        description="hf-paged: tokens per forward pass of the continuous batch (prompt chunks "
        "and one token per decoding row together; transformers' max_batch_tokens), not the KV "
        "cache's size (that is kv_cache_tokens). None = transformers' 8192 on a GPU, 256 on a "
        "CPU. With sdpa or eager attention every forward also holds a [M, cache + M] mask in the "
        "compute dtype, so a few thousand is plenty: 131072 would take 64 GiB in fp32.",
    )
    kv_cache_tokens: int | None = Field(
        default=None,
        ge=1,
        description="hf-paged: the paged KV cache's size in tokens, over all the rows decoding "
        "at once (transformers' num_blocks x page_size). None = as many as fit in "
        "kv_cache_memory_fraction of the GPU memory free when sampling starts (on a CPU: what "
        "the requests need). A prompt plus its longest response must fit in it.",
    )
    kv_cache_memory_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="hf-paged: share of the GPU memory free when sampling starts (after the "
        "student, its gradients and Adam state, the teachers, and the bfloat16 copy of the "
        "weights that bf16-mixed samples with) that the KV cache and each forward's buffers may "
        "take; the rest is for the sampling's vocabulary-sized temporaries (transformers' "
        "max_memory_percent; None = its 0.9, or 0.8 with temperature / top-k / top-p). With "
        "kv_cache_tokens set, a cache that does not fit in it is an error.",
    )
    gpu_memory_utilization: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="vllm: share of the GPU for its weights and KV cache; the rest stays for "
        "training (the engine sleeps while the teachers and the update run).",
    )

    @model_validator(mode="after")
    def _cache_holds_a_response(self) -> RolloutConfig:
        if self.kv_cache_tokens is not None and self.kv_cache_tokens <= self.max_new_tokens:
            raise conflict(
                f"kv_cache_tokens = {self.kv_cache_tokens} cannot hold one response of "
                f"max_new_tokens = {self.max_new_tokens} tokens and its prompt: the longest row "
                "would never be scheduled; raise kv_cache_tokens, or leave it unset to size the "
                "cache from free GPU memory",
                "kv_cache_tokens",
                "max_new_tokens",
            )
        return self
