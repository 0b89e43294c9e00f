"""Micro-batches of a rollout batch: by rows, or by a token budget (dynamic batching).

With a token budget, rows are sorted by length and packed greedily so that each micro-batch,
once its own padding is trimmed, holds at most `max_tokens` cells (rows x its longest prompt
plus its longest response): short rows travel in large micro-batches and long ones alone, so
memory follows the tokens instead of the longest row times a fixed row count.
"""

from __future__ import annotations

import torch

from uniopd.engine.sequences import SequenceBatch


def micro_batches(batch: SequenceBatch, max_rows: int, max_tokens: int = 0) -> list[torch.Tensor]:
    """Row indices of each micro-batch. `max_rows` (0 = no cap) bounds rows; `max_tokens`
    (0 = off) bounds padded cells. A row longer than the budget goes alone."""
    n = batch.input_ids_N_L.shape[0]
    device = batch.input_ids_N_L.device
    rows = max_rows or n
    if not max_tokens:
        return [torch.arange(s, min(s + rows, n), device=device) for s in range(0, n, rows)]
    p = batch.prompt_width
    prompt_len = batch.attention_mask_N_L[:, :p].sum(-1).tolist()
    response_len = batch.response_mask_N_T.sum(-1).long().tolist()
    order = sorted(range(n), key=lambda i: (prompt_len[i] + response_len[i], i), reverse=True)
    out: list[list[int]] = []
    current: list[int] = []
    widest_p = widest_t = 0
    for i in order:
        wp, wt = max(widest_p, prompt_len[i]), max(widest_t, max(1, response_len[i]))
        if current and ((len(current) + 1) * (wp + wt) > max_tokens or len(current) == rows):
            out.append(current)
            current, wp, wt = [], prompt_len[i], max(1, response_len[i])
        current.append(i)
        widest_p, widest_t = wp, wt
    if current:
        out.append(current)
    return [torch.tensor(sorted(c), device=device) for c in out]
