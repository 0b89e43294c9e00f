"""`rollout.engine: hf-paged`: transformers' continuous batching (`model.generate_batch`) over a
paged KV cache, with the live student module. Rows join and leave the running batch as they
finish, and the batch is bounded by tokens, not rows.

Sizes, in transformers' own meaning (5.25: generation/continuous_batching/cache.py,
PagedAttentionMemoryHandler; continuous_api.py): `rollout.max_batch_tokens` is the tokens of one
forward pass; the cache holds `rollout.kv_cache_tokens` tokens (`num_blocks` pages of
`page_size`), or when unset as many as fit in `rollout.kv_cache_memory_fraction`
(`max_memory_percent`) of the GPU memory free when sampling starts.

Precision: transformers decodes in a thread of its own (continuous_api.py, `start`), and
autocast is per thread, so the caller's bf16-mixed autocast does not reach the forward passes.
Under autocast the student samples with a copy of its weights in the autocast dtype instead
(`sampling_weights`), and its float32 master tensors are put back afterwards. The copy takes 2
bytes a parameter while sampling (8 GB for Qwen3-4B); autocast entered inside the thread would
cache the same bf16 weight copies, but the paged cache and the attention masks take
`model.dtype` (continuous_api.py, `_create_batch_processor`), so it would keep float32 K/V:
288 KiB a cached token for Qwen3-4B instead of 144.

Log-probs: continuous batching reports the log-prob of each sampled token under the distribution
it sampled from, which is the raw one only when sampling is plain (temperature 1, no top-k or
top-p) or greedy; otherwise the engine gives none and the mismatch metrics are empty.

Sampling draws from a seed taken from torch's global generator (one draw), so a seeded step
samples the same rollouts; the global generator is restored afterwards (continuous batching
reseeds it).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

import torch

from uniopd.engine.rollout.base import (
    ENGINES,
    EngineOptions,
    Generated,
    RolloutEngine,
    cut_at_stop,
)
from uniopd.engine.rollout.hf import generation_config
from uniopd.engine.sampling import SamplingSettings

CPU_BATCH_TOKENS = 256  # tokens per forward on a CPU when rollout.max_batch_tokens is unset
GPU_PAGE_TOKENS = 256  # transformers' default page_size
CPU_PAGE_TOKENS = 16  # small pages for the small caches of CPU runs


def _cb_config(**wanted):
    """A ContinuousBatchingConfig with the fields this transformers version has."""
    from transformers import ContinuousBatchingConfig

    known = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
    return ContinuousBatchingConfig(**{k: v for k, v in wanted.items() if k in known}), known


def paged_sizing(
    options: EngineOptions, device: torch.device, row_tokens: Sequence[int]
) -> dict[str, int | float | None]:
    """ContinuousBatchingConfig's sizing fields for requests of `row_tokens` tokens each (prompt
    plus max_new_tokens). On a GPU an unset cache size is transformers' to infer from free
    memory; elsewhere that would be all of RAM, so the cache is sized to the requests."""
    gpu = device.type == "cuda"
    page = GPU_PAGE_TOKENS if gpu else CPU_PAGE_TOKENS
    per_forward = options.max_batch_tokens
    if per_forward is None and not gpu:
        per_forward = CPU_BATCH_TOKENS
    sizing: dict[str, int | float | None] = {
        "page_size": page,
        "max_batch_tokens": per_forward,
        "max_memory_percent": options.kv_cache_memory_fraction,
    }
    if options.kv_cache_tokens is not None:
        longest = max(row_tokens, default=0)
        if longest > options.kv_cache_tokens:
            raise ValueError(
                f"hf-paged: a prompt and its max_new_tokens take {longest} cache tokens, more "
                f"than rollout.kv_cache_tokens = {options.kv_cache_tokens}: raise it, or leave "
                "it unset to size the cache from free GPU memory"
            )
        sizing["num_blocks"] = -(-options.kv_cache_tokens // page)
    elif not gpu:
        sizing["num_blocks"] = sum(-(-n // page) for n in row_tokens) + 1
    return sizing


def batching_config(
    options: EngineOptions, device: torch.device, row_tokens: Sequence[int], seed: int
):
    """The ContinuousBatchingConfig `generate` passes for these requests, and the field names
    this transformers version knows."""
    return _cb_config(
        **paged_sizing(options, device, row_tokens),
        return_logprobs=True,
        seed=seed,
        auto_switch_to_flash=False,  # the student's attention kernel stays the run's
    )


def sampling_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype the caller's autocast computes in on `device` (bf16-mixed: bfloat16), None
    without autocast (fp32 and bf16-pure sample with the weights as they are)."""
    if not torch.is_autocast_enabled(device.type):
        return None
    return torch.get_autocast_dtype(device.type)


@contextlib.contextmanager
def sampling_weights(model: torch.nn.Module, dtype: torch.dtype | None) -> Iterator[None]:
    """The model's floating-point parameters as `dtype` copies inside the block. The master
    tensors themselves are put back afterwards, whatever happens inside, so the optimizer's
    state, the gradients and any views of them stay valid. Buffers keep their dtype (rotary
    frequencies stay float32, as when a bf16 checkpoint loads)."""
    masters = []
    if dtype is not None:
        masters = [
            (p, p.data) for p in model.parameters() if p.is_floating_point() and p.dtype != dtype
        ]
    try:
        for p, master in masters:
            p.data = master.to(dtype)
        yield
    finally:
        for p, master in masters:
            p.data = master


@ENGINES.register("hf-paged")
class HFPagedEngine(RolloutEngine):
    """transformers continuous batching with a paged KV cache: rollout.max_batch_tokens per
    forward, rollout.kv_cache_tokens (or kv_cache_memory_fraction) of cache."""

    @classmethod
    def problems(cls, *, sharded: bool, lora: bool = False, images: bool = False) -> list[str]:
        out = super().problems(sharded=sharded, lora=lora, images=images)
        try:
            from transformers import ContinuousBatchingConfig  # noqa: F401
        except ImportError:
            import transformers

            out.append(
                f"needs transformers' ContinuousBatchingConfig (transformers "
                f"{transformers.__version__} has none): upgrade transformers"
            )
        return out

    @torch.no_grad()
    def generate(
        self, prompt_ids: Sequence[Sequence[int]], sampling: SamplingSettings
    ) -> Generated:
        if not prompt_ids:
            return Generated([], [])
        gen = generation_config(sampling)
        seed = int(torch.randint(0, 2**31 - 1, ()))
        model = self.model
        device = next(model.parameters()).device
        rows = [len(p) + sampling.max_new_tokens for p in prompt_ids]
        cb, known = batching_config(self.options, device, rows, seed)
        was_training = model.training
        model.eval()
        try:
            with (
                torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
                sampling_weights(model, sampling_dtype(device)),
            ):
                out = model.generate_batch(
                    [list(p) for p in prompt_ids],
                    generation_config=gen,
                    continuous_batching_config=cb,
                    progress_bar=False,
                )
        finally:
            model.train(was_training)
        results = list(out.values())  # in input order
        if len(results) != len(prompt_ids) or any(r.error for r in results):
            errors = [r.error for r in results if r.error]
            raise RuntimeError(
                f"hf-paged: {len(results)} of {len(prompt_ids)} requests came back"
                + (f"; first error: {errors[0]}" if errors else "")
            )
        responses, logprobs = [], []
        for r in results:
            row = list(r.generated_tokens)
            n = cut_at_stop(row, sampling)
            responses.append(row[:n])
            logprobs.append(list(r.logprobs[:n]))
        # greedy and plain sampling apply no logits processor: the reported log-probs are raw
        keep = "return_logprobs" in known and (sampling.plain or sampling.greedy)
        return Generated(responses, logprobs if keep else None)
