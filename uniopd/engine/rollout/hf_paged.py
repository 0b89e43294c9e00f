"""`rollout.engine: hf-paged`: transformers' continuous batching (`model.generate_batch`) over a
paged KV cache, with the live student module. Rows join and leave the running batch as they
finish, and the batch is bounded by tokens (`rollout.max_batch_tokens`), not rows.

Log-probs: continuous batching reports the log-prob of each sampled token under the distribution
it sampled from, which is the raw one only when sampling is plain (temperature 1, no top-k or
top-p) or greedy; otherwise the engine gives none and the mismatch metrics are empty.

Sampling draws from a seed taken from torch's global generator (one draw), so a seeded step
samples the same rollouts; the global generator is restored afterwards (continuous batching
reseeds it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from uniopd.engine.rollout.base import ENGINES, Generated, RolloutEngine, cut_at_stop
from uniopd.engine.rollout.hf import generation_config
from uniopd.engine.sampling import SamplingSettings

CPU_BATCH_TOKENS = 256  # tokens per forward on a CPU when rollout.max_batch_tokens is unset


def _cb_config(**wanted):
    """A ContinuousBatchingConfig with the fields this transformers version has."""
    from transformers import ContinuousBatchingConfig

    known = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
    return ContinuousBatchingConfig(**{k: v for k, v in wanted.items() if k in known}), known


@ENGINES.register("hf-paged")
class HFPagedEngine(RolloutEngine):
    """transformers continuous batching with a paged KV cache, rollout.max_batch_tokens per
    forward."""

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
        sizing: dict = {"max_batch_tokens": self.options.max_batch_tokens}
        if device.type != "cuda":  # transformers sizes the cache from free memory: on a CPU that
            # is all of RAM, so size it to these requests (pages of 16 tokens) instead
            page = 16
            need = sum(-(-(len(p) + sampling.max_new_tokens) // page) for p in prompt_ids)
            sizing = {
                "page_size": page,
                "num_blocks": need + 1,
                "max_batch_tokens": self.options.max_batch_tokens or CPU_BATCH_TOKENS,
            }
        cb, known = _cb_config(
            **sizing,
            return_logprobs=True,
            seed=seed,
            auto_switch_to_flash=False,  # the student's attention kernel stays the run's
        )
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
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
