"""Length buckets (uniopd/engine/length_buckets.py): a batch's forward pass in right-padded
buckets of similar length gives each response token the log-prob, entropy and gradient it has
when its row runs alone, with no padding at all; the split is the cheapest contiguous one."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import AutoModelForCausalLM

from uniopd.engine.length_buckets import LengthBuckets, bucket_cuts
from uniopd.engine.logprobs import response_logprobs, response_topk
from uniopd.engine.sequences import pack

# prompt and response lengths of mixed rows, some far apart (an empty response included)
PROMPTS = (5, 3, 9, 4, 12, 6, 3, 8)
RESPONSES = (30, 2, 7, 0, 26, 11, 3, 18)


def _rows(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 200, (n,), generator=g).tolist() for n in PROMPTS]
    responses = [torch.randint(3, 200, (n,), generator=g).tolist() for n in RESPONSES]
    return prompts, responses


def _cost(lengths: list[int], cuts, cost_cells: int) -> int:
    return sum((b - a) * lengths[a] + cost_cells for a, b in cuts)


def test_the_worked_split():
    # one bucket: 6 x 10 + 5 = 65; two, {10, 10, 9} and {3, 3, 2}: 30 + 9 + 2 x 5 = 49;
    # three, {10, 10} {9} {3, 3, 2}: 20 + 9 + 9 + 15 = 53
    assert bucket_cuts([10, 10, 9, 3, 3, 2], 5) == [(0, 3), (3, 6)]
    assert bucket_cuts([10, 10, 9, 3, 3, 2], 100) == [(0, 6)]
    assert bucket_cuts([10, 9, 3], 0) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("seed", range(5))
def test_the_split_is_the_cheapest_contiguous_one(seed):
    g = torch.Generator().manual_seed(seed)
    lengths = sorted(torch.randint(1, 60, (9,), generator=g).tolist(), reverse=True)
    cost_cells = int(torch.randint(0, 200, (1,), generator=g))
    best = min(
        _cost(lengths, list(zip((0, *ends), (*ends, 9))), cost_cells)
        for k in range(9)
        for ends in itertools.combinations(range(1, 9), k)
    )
    assert _cost(lengths, bucket_cuts(lengths, cost_cells), cost_cells) == best


def _alone(model, prompts, responses, with_grad_weights=None):
    """Each row's response log-probs and entropy with the row alone in its batch (no padding),
    laid out as the padded batch's `[N, T]`; with weights, also backward of sum(w * logp)."""
    t = max(1, max(len(r) for r in responses))
    logp, entropy = torch.zeros(len(prompts), t), torch.zeros(len(prompts), t)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if not r:
            continue
        lp, en = response_logprobs(model, pack([p], [r], 0), with_entropy=True)
        if with_grad_weights is not None:
            (lp[0] * with_grad_weights[i, : len(r)]).sum().backward()
        logp[i, : len(r)], entropy[i, : len(r)] = lp[0].detach(), en[0]
    return logp, entropy


def test_buckets_give_each_row_its_unpadded_log_probs_and_gradients(make_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(make_checkpoint(81), dtype=torch.float32)
    prompts, responses = _rows()
    batch = pack(prompts, responses, 0)
    buckets = LengthBuckets.of(batch, cost_cells=0)  # every length its own bucket
    assert len(buckets.pieces) > 3
    assert sum(p.input_ids_N_L.numel() for p in buckets.pieces) < batch.input_ids_N_L.numel()
    w = torch.randn(batch.response_mask_N_T.shape, generator=torch.Generator().manual_seed(1))
    w = w * batch.response_mask_N_T

    logp, entropy = buckets.logprobs_and_entropy(model)
    (logp * w).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    want_logp, want_entropy = _alone(model, prompts, responses, with_grad_weights=w)

    assert torch.allclose(logp, want_logp, atol=1e-5, rtol=1e-5)
    assert torch.allclose(entropy, want_entropy, atol=1e-5, rtol=1e-5)
    assert torch.equal(logp == 0, batch.response_mask_N_T == 0)  # 0 exactly on padding
    for got, want in zip(grads, (p.grad for p in model.parameters())):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-4)


def test_a_teachers_top_k_in_buckets_is_each_rows_own(make_checkpoint):
    """Top-K in buckets (what Teachers.topk computes for the KL-family objectives): each real
    response position gets the K tokens and log-probs it gets with its row alone, 0 on padding."""
    model = AutoModelForCausalLM.from_pretrained(make_checkpoint(81), dtype=torch.float32)
    prompts, responses = _rows()
    batch, k = pack(prompts, responses, 0), 5
    buckets = LengthBuckets.of(batch, cost_cells=0)
    assert len(buckets.pieces) > 3
    with torch.no_grad():
        logp, ids = buckets.topk(model, k)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            if r:
                want_logp, want_ids = response_topk(model, pack([p], [r], 0), k)
                assert torch.allclose(logp[i, : len(r)], want_logp[0], atol=1e-5, rtol=1e-5)
                assert torch.equal(ids[i, : len(r)], want_ids[0])
    pad = batch.response_mask_N_T == 0
    assert logp[pad].eq(0).all() and ids[pad].eq(0).all()
    assert logp.shape == ids.shape == (*batch.response_mask_N_T.shape, k)


def test_one_bucket_keeps_the_batch_layout_and_its_exact_numbers(make_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(make_checkpoint(81), dtype=torch.float32)
    batch = pack(*_rows(), 0)
    buckets = LengthBuckets.of(batch, cost_cells=10**6)
    assert buckets.pieces == []
    with torch.no_grad():
        assert torch.equal(buckets.logprobs(model), response_logprobs(model, batch))


def test_rows_with_a_hole_in_their_mask_keep_the_batch_layout():
    batch = pack(*_rows(), 0)
    batch.attention_mask_N_L[0, batch.prompt_width - 2] = 0  # a masked token inside a prompt
    assert LengthBuckets.of(batch, cost_cells=0).pieces == []
