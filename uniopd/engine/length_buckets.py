"""Length buckets: one micro-batch's forward pass split by row length, each bucket right-padded.

A rollout batch is laid out `[left-padded prompt | right-padded response]`
(uniopd.engine.sequences): every row is as wide as the longest prompt plus the longest response,
so a batch of mixed lengths is partly padding (30 % of the cells of the tiny world's quickstart
update). For the forward pass the rows are laid out again: sorted by length and cut into buckets,
each row written `[prompt | response]` from column 0 and right-padded to its bucket's longest row.
Right padding needs no attention mask: in a causal model no real token sees the padding after it,
so each bucket runs with an all-ones mask (SDPA's causal kernel, no mask built) and its real
tokens get the positions, attention and log-probs they get in the batch's own layout, up to float
summation order. The log-probs are gathered back into the batch's `[N, T]` columns: callers get
what `response_logprobs` gives for the batch.

Where to cut: over the rows sorted by length, the contiguous split that minimises the padded cells
plus a fixed cost per bucket (BUCKET_COST_CELLS, each bucket being one more forward and backward
pass), by dynamic programming. When one bucket is best the batch keeps its own layout, so small
batches compute exactly what they did before. A layout depends on the rows only, never on the
weights: the policy update builds it once a step and every PPO epoch reuses it.

Image-text rows (their pixel inputs and rope follow the batch's layout) and rows that are not
`[padding | prompt | response | padding]` keep the batch's own layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from uniopd.engine.logprobs import CHUNK_TOKENS, response_logprobs, response_topk
from uniopd.engine.sequences import SequenceBatch

# A bucket's fixed cost in padded cells: what one more forward and backward pass costs beyond
# its tokens. On the 2-core CPU the tiny world's student runs a pass over a bucket of 16 rows in
# about the time of 500 more cells (benchmarks/update_flops.py --bucket-cost); a large model on a
# GPU spends a few hundred tokens' time in launches per pass, so the same figure holds there.
BUCKET_COST_CELLS = 512


def bucket_cuts(lengths_desc: list[int], cost_cells: int) -> list[tuple[int, int]]:
    """(start, end) of each bucket over lengths sorted longest first: the contiguous split with
    the fewest `rows x longest row` cells plus `cost_cells` per bucket."""
    n = len(lengths_desc)
    length = np.asarray(lengths_desc, dtype=np.int64)
    best = np.zeros(n + 1, dtype=np.int64)  # best[j]: the cost of the first j rows
    start = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        # a last bucket of rows i..j-1 is as wide as row i, the longest of them
        cost = best[:j] + (j - np.arange(j)) * length[:j] + cost_cells
        start[j] = int(np.argmin(cost))
        best[j] = cost[start[j]]
    cuts, j = [], n
    while j > 0:
        cuts.append((int(start[j]), j))
        j = int(start[j])
    return cuts[::-1]


def _plain_rows(batch: SequenceBatch, prompt_N: torch.Tensor, length_N: torch.Tensor) -> bool:
    """Every row is `[padding | prompt | response | padding]`, with a prompt of one token at least,
    and its response mask lies within its response."""
    p = batch.prompt_width
    cols = torch.arange(batch.attention_mask_N_L.shape[1], device=length_N.device)
    first = p - prompt_N
    want = (cols >= first[:, None]) & (cols < (first + length_N)[:, None])
    inside = want[:, p:].to(batch.response_mask_N_T.dtype)
    return bool(
        (prompt_N >= 1).all()
        and torch.equal(batch.attention_mask_N_L.bool(), want)
        and (batch.response_mask_N_T * (1 - inside)).eq(0).all()
    )


@dataclass
class LengthBuckets:
    """A micro-batch and, when cutting it pays, its buckets: each right-padded `SequenceBatch`
    (prompt width 1, so its response columns are every next-token position), with the flat
    positions of its real response tokens in its own `[k, W - 1]` log-probs (`source`) and in
    the batch's `[N, T]` (`target`)."""

    batch: SequenceBatch
    pieces: list[SequenceBatch] = field(default_factory=list)
    source: list[torch.Tensor] = field(default_factory=list)
    target: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def of(cls, batch: SequenceBatch, cost_cells: int | None = None) -> LengthBuckets:
        """The buckets of `batch`, or none (the batch as it is) when one bucket is best;
        `cost_cells`: a bucket's fixed cost (default BUCKET_COST_CELLS)."""
        cost_cells = BUCKET_COST_CELLS if cost_cells is None else cost_cells
        if batch.vision is not None or batch.prompt_width == 0:
            return cls(batch)
        p = batch.prompt_width
        prompt_N = batch.attention_mask_N_L[:, :p].sum(-1)
        length_N = batch.attention_mask_N_L.sum(-1)
        if not _plain_rows(batch, prompt_N, length_N):
            return cls(batch)
        order = sorted(range(len(length_N)), key=lambda i: -int(length_N[i]))
        cuts = bucket_cuts([int(length_N[i]) for i in order], cost_cells)
        if len(cuts) == 1:
            return cls(batch)
        out = cls(batch)
        order_t = torch.tensor(order, device=length_N.device)
        for a, b in cuts:
            out._add(order_t[a:b], prompt_N, length_N)
        return out

    def _add(self, rows: torch.Tensor, prompt_N: torch.Tensor, length_N: torch.Tensor) -> None:
        """One bucket of `rows`: right-padded ids, a response mask over every next-token column,
        and where its real response tokens go."""
        batch, p = self.batch, self.batch.prompt_width
        n_cols, t = batch.attention_mask_N_L.shape[1], batch.response_mask_N_T.shape[1]
        prompt_k, length_k = prompt_N[rows], length_N[rows]
        width = max(int(length_k.max()), 2)  # (one response column at least)
        cols = torch.arange(width, device=rows.device)
        source_col = (p - prompt_k[:, None] + cols).clamp(max=n_cols - 1)
        ids = batch.input_ids_N_L[rows].gather(1, source_col)  # past a row's end: any real id
        # response column j of the bucket predicts its token j + 1, the row's response token
        # j + 1 - prompt
        t_k_J = cols[None, : width - 1] + 1 - prompt_k[:, None]
        real = (t_k_J >= 0) & (t_k_J < (length_k - prompt_k)[:, None])
        t_clamped = t_k_J.clamp(0, t - 1)
        mask = batch.response_mask_N_T[rows].gather(1, t_clamped) * real
        self.pieces.append(SequenceBatch(ids, torch.ones_like(ids), mask, 1))
        k_idx, j_idx = real.nonzero(as_tuple=True)
        self.source.append(k_idx * (width - 1) + j_idx)
        self.target.append(rows[k_idx] * t + t_clamped[k_idx, j_idx])

    def logprobs(self, model, chunk_tokens: int = CHUNK_TOKENS) -> torch.Tensor:
        """`response_logprobs(model, batch)`, bucket by bucket."""
        return self._run(model, False, chunk_tokens)[0]

    def logprobs_and_entropy(
        self, model, chunk_tokens: int = CHUNK_TOKENS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`response_logprobs(model, batch, with_entropy=True)`, bucket by bucket."""
        logp, entropy = self._run(model, True, chunk_tokens)
        assert entropy is not None
        return logp, entropy

    def topk(
        self, model, k: int, chunk_tokens: int = CHUNK_TOKENS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`response_topk(model, batch, k)`, bucket by bucket: a teacher's K most likely tokens
        (log-probs `[N, T, K]`, ids `[N, T, K]`, 0 on padding)."""
        if not self.pieces:
            return response_topk(model, self.batch, k, chunk_tokens)
        logp, ids = [], []
        for piece, source in zip(self.pieces, self.source):
            lp, top = response_topk(model, piece, k, chunk_tokens)
            logp.append(lp.reshape(-1, k)[source])
            ids.append(top.reshape(-1, k)[source])
        n, t = self.batch.response_mask_N_T.shape
        target = torch.cat(self.target)
        logp_flat, ids_flat = logp[0].new_zeros(n * t, k), ids[0].new_zeros(n * t, k)
        logp_flat[target], ids_flat[target] = torch.cat(logp), torch.cat(ids)
        return logp_flat.view(n, t, k), ids_flat.view(n, t, k)

    def _run(self, model, with_entropy: bool, chunk_tokens: int):
        """(log-probs `[N, T]`, entropy `[N, T]` or None) of the batch's response tokens."""
        if not self.pieces:
            got = response_logprobs(model, self.batch, with_entropy, chunk_tokens)
            return got if with_entropy else (got, None)
        logp, entropy = [], []
        for piece, source in zip(self.pieces, self.source):
            got = response_logprobs(model, piece, with_entropy, chunk_tokens)
            lp, en = got if with_entropy else (got, None)
            logp.append(lp.reshape(-1)[source])
            if en is not None:
                entropy.append(en.reshape(-1)[source])
        shape = self.batch.response_mask_N_T.shape
        target = torch.cat(self.target)
        logp_N_T = _scatter(torch.cat(logp), target, shape)
        return logp_N_T, _scatter(torch.cat(entropy), target, shape) if with_entropy else None


def _scatter(values: torch.Tensor, target: torch.Tensor, shape) -> torch.Tensor:
    """`[N, T]` with `values` at flat positions `target` and 0 elsewhere (differentiable)."""
    flat = values.new_zeros(shape[0] * shape[1])
    return flat.index_put((target,), values).view(shape)
