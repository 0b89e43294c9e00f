"""`rollout.engine: hf-static`: the `hf` engine's sampling in a decode loop of its own, over a KV
cache allocated once for the whole response, with the live student module.

What it saves against HF `generate` (measured on the tiny world, 2-core CPU: a decoding step
there is mostly bookkeeping and small kernels, docs/results.md):
- the cache is written in place instead of growing by concatenation (which copied every
  layer's whole cache at every step), the prompt's forward computes the last position's logits
  only, and none of `generate`'s per-step machinery runs;
- rows that stopped leave the batch (their cache rows too) once they are a quarter of it,
  instead of decoding padding until the longest row ends;
- a token is drawn by inverting the cumulative distribution with one uniform number per row,
  where `torch.multinomial` draws an exponential number per vocabulary entry.

The samples follow the same distribution as `hf`'s (the model's logits through the same
processors, in `generate`'s order: suppressed tokens, temperature, top-k, top-p; greedy is the
argmax), but not the same random stream: seeded alike, the two engines draw different tokens.
The log-probs it reports are the raw ones of the sampled tokens and match the trainer's
(tests/engines/test_engine_contract.py; tests/test_rollout_hf_static.py checks the sampler).
Text students only, unsharded: an image-text or FSDP-sharded student uses `hf`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from uniopd.engine.rollout.base import ENGINES, Generated, RolloutEngine, cut_at_stop
from uniopd.engine.sampling import SamplingSettings


class _PreallocatedLayer(DynamicLayer):
    """A full-attention layer's cache in one buffer `[rows, heads, capacity, head_dim]`, written
    in place; `update` returns the filled part (a view), what `DynamicLayer` would hold."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.filled = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        rows, heads, _, _ = key_states.shape
        self._k = key_states.new_empty((rows, heads, self.capacity, key_states.shape[-1]))
        self._v = value_states.new_empty((rows, heads, self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, self.filled = self.filled, self.filled + key_states.shape[-2]
        self._k[:, :, start : self.filled] = key_states
        self._v[:, :, start : self.filled] = value_states
        self.keys, self.values = self._k[:, :, : self.filled], self._v[:, :, : self.filled]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices`: their filled part, in a buffer of the same capacity."""
        if not self.is_initialized:
            return
        k, v = (
            self._k.new_empty((len(indices), *self._k.shape[1:])),
            self._v.new_empty((len(indices), *self._v.shape[1:])),
        )
        k[:, :, : self.filled] = self._k[indices, :, : self.filled]
        v[:, :, : self.filled] = self._v[indices, :, : self.filled]
        self._k, self._v = k, v
        self.keys, self.values = k[:, :, : self.filled], v[:, :, : self.filled]


def preallocated_cache(model, capacity: int) -> DynamicCache:
    """The model's own dynamic cache, its full-attention layers preallocated for `capacity`
    tokens (sliding-window and other layer kinds stay as transformers builds them)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [
        _PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer
        for layer in cache.layers
    ]
    return cache


def logits_processors(s: SamplingSettings, device: torch.device) -> LogitsProcessorList:
    """What `generate` builds for `generation_config(s)`, in its order (transformers 5.25,
    GenerationMixin._get_logits_processor): suppressed tokens first, then the sampling warpers."""
    out = LogitsProcessorList()
    if s.banned_token_ids:
        out.append(SuppressTokensLogitsProcessor(list(s.banned_token_ids), device=str(device)))
    if s.greedy:
        return out
    if s.temperature != 1.0:
        out.append(TemperatureLogitsWarper(s.temperature))
    if s.top_k != 0:
        out.append(TopKLogitsWarper(top_k=s.top_k))
    if s.top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=s.top_p))
    return out


def _left_padded(chunk: Sequence[Sequence[int]], pad: int, extra: int):
    """(token ids `[n, P + extra]`, attention mask `[n, P + extra]`): prompts left-padded to
    their longest, `extra` columns after them for the response (mask 1: what `generate`
    appends)."""
    width = max(len(p) for p in chunk)
    ids = torch.full((len(chunk), width + extra), pad, dtype=torch.long)
    attn = torch.zeros((len(chunk), width + extra), dtype=torch.long)
    attn[:, width:] = 1
    for i, p in enumerate(chunk):
        ids[i, width - len(p) : width] = torch.tensor(p, dtype=torch.long)
        attn[i, width - len(p) : width] = 1
    return ids, attn, width


def sample_categorical(probs_n_V: torch.Tensor) -> torch.Tensor:
    """One token per row from `probs_n_V` (rows need not sum to 1): the first index whose
    cumulative mass exceeds a uniform draw times the row's total. Exact categorical sampling
    with one random number a row; a zero-probability token is never drawn (its cumulative
    mass equals its predecessor's, which a search to the right passes over)."""
    cdf = probs_n_V.cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand((probs_n_V.shape[0], 1), device=probs_n_V.device) * total
    token = torch.searchsorted(cdf, u, right=True)
    # u * total rounded up to the total: the last token of nonzero probability, not past it
    last = (cdf < total).sum(-1, keepdim=True)
    return torch.minimum(token, last).squeeze(1)


class _Batch:
    """The rows still decoding: their indices into the chunk, their attention mask, the cache."""

    def __init__(self, attn: torch.Tensor, cache: DynamicCache):
        self.rows = torch.arange(attn.shape[0], device=attn.device)
        self.attn, self.cache = attn, cache

    def drop(self, finished: torch.Tensor) -> None:
        """Take the rows marked `finished` out of the batch and its cache."""
        keep = (~finished).nonzero().squeeze(1)
        self.rows, self.attn = self.rows[keep], self.attn[keep]
        self.cache.batch_select_indices(keep)


@torch.no_grad()
def decode(model, chunk: Sequence[Sequence[int]], s: SamplingSettings, device: torch.device):
    """(tokens `[n, steps]`, their raw log-probs `[n, steps]`) for one chunk of prompts; a row
    that stopped holds padding after its stop token (log-prob 0)."""
    ids, attn, width = _left_padded(chunk, s.pad_token_id, s.max_new_tokens)
    ids, attn = ids.to(device), attn.to(device)
    processors = logits_processors(s, device)
    stops = torch.tensor(list(s.stop_token_ids) or [-1], device=device)
    live = _Batch(attn, preallocated_cache(model, width + s.max_new_tokens))
    finished = torch.zeros(len(chunk), dtype=torch.bool, device=device)
    logp = torch.zeros((len(chunk), s.max_new_tokens), device=device)
    step_ids, end = ids[:, :width], width
    for t in range(s.max_new_tokens):
        out = model(
            input_ids=step_ids,
            attention_mask=live.attn[:, :end],
            cache=live.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        scores = processors(ids[live.rows, :end], logits)
        if s.greedy:
            token = torch.argmax(scores, dim=-1)
        else:
            token = sample_categorical(torch.softmax(scores, dim=-1))
        # rows that stopped but are still in the batch get padding, as in `generate`
        done = finished[live.rows]
        token = token.masked_fill(done, s.pad_token_id)
        row_logp = logits.gather(1, token[:, None]).squeeze(1) - logits.logsumexp(-1)
        logp[live.rows, t] = row_logp.masked_fill(done, 0.0)
        ids[live.rows, end] = token
        end += 1
        finished[live.rows[torch.isin(token, stops) & ~done]] = True
        if bool(finished.all()):
            break
        # dropping rows copies the cache: worth it once a quarter of the batch is padding
        if int(finished[live.rows].sum()) * 4 >= len(live.rows):
            live.drop(finished[live.rows])
        step_ids = ids[live.rows, end - 1 : end]
    return ids[:, width:end], logp[:, : end - width]


def decode_rows(
    model, prompt_ids: Sequence[Sequence[int]], s: SamplingSettings, max_batch_rows: int
) -> Generated:
    """Every row of `prompt_ids`, in chunks of `max_batch_rows`, cut at its stop token."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    responses: list[list[int]] = []
    logprobs: list[list[float]] = []
    try:
        for start in range(0, len(prompt_ids), max_batch_rows):
            tokens, logp = decode(model, prompt_ids[start : start + max_batch_rows], s, device)
            for row, row_logp in zip(tokens.tolist(), logp.cpu().tolist()):
                n = cut_at_stop(row, s)
                responses.append(row[:n])
                logprobs.append(row_logp[:n])
    finally:
        model.train(was_training)
    return Generated(responses, logprobs)


@ENGINES.register("hf-static")
class HFStaticEngine(RolloutEngine):
    """The `hf` engine's samples from a decode loop of its own over a preallocated KV cache, in
    chunks of rollout.max_batch_rows rows (text students, unsharded)."""

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingSettings,
        vision: Sequence | None = None,
    ) -> Generated:
        return decode_rows(self.model, prompt_ids, sampling, self.options.max_batch_rows)
