"""`rollout.engine: hf-static` (uniopd/engine/rollout/hf_static.py): its sampler draws from the
model's distribution, as `hf` does; greedy decoding gives `hf`'s tokens; rows that stop early
leave the batch without disturbing the others. The engine contract (interface, stop tokens,
log-probs against the trainer's, every sampling setting) is tests/engines/test_engine_contract.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.rollout import make_engine, rollout_batch
from uniopd.engine.rollout.hf_static import sample_categorical
from uniopd.engine.sampling import resolve_sampling


def _load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), (
        AutoTokenizer.from_pretrained(path)
    )


def test_sample_categorical_draws_each_token_at_its_probability():
    weights = torch.tensor([0.0, 1.0, 0.0, 3.0, 4.0, 0.0, 2.0, 0.0])  # not normalised
    torch.manual_seed(0)
    drawn = sample_categorical(weights.expand(40_000, -1).contiguous())
    freq = torch.bincount(drawn, minlength=8).float() / drawn.numel()
    assert (freq[weights == 0] == 0).all()  # a zero-probability token is never drawn
    assert (freq - weights / weights.sum()).abs().max() < 0.01
    # a row whose mass sits on its last token, and one on its first
    edge = torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert sample_categorical(edge.repeat(500, 1)).view(500, 2).unique(dim=0).tolist() == [[3, 0]]


@pytest.mark.slow  # 8,000 one-token rollouts
def test_first_tokens_follow_the_models_distribution_as_hf_does(make_checkpoint):
    """Top-k 8: the draws fall on the 8 likeliest tokens at their renormalised probabilities."""
    model, tok = _load(make_checkpoint(61))
    prompt = tok("Ana has 7 pens.", add_special_tokens=False)["input_ids"]
    s = resolve_sampling(tok, model, max_new_tokens=1, top_k=8)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
    top, ids = logits.topk(8)
    want = dict(zip(ids.tolist(), torch.softmax(top, -1).tolist()))
    for name in ("hf", "hf-static"):
        torch.manual_seed(0)
        gen = make_engine(name, model, tok).generate([prompt] * 4000, s)
        drawn = [r[0] if r else s.pad_token_id for r in gen.responses]
        assert set(drawn) <= set(want), name
        for token, p in want.items():
            assert abs(drawn.count(token) / 4000 - p) < 0.025, (name, token, p)


@pytest.mark.slow  # HF generate, 16 steps
def test_greedy_decoding_gives_hfs_tokens(make_checkpoint):
    model, tok = _load(make_checkpoint(62))
    prompts = [
        tok(p, add_special_tokens=False)["input_ids"]
        for p in ("Ana has 7 pens.", "Write f(x).", "How many pens now?", "Sum 2 and 3.")
    ]
    s = replace(resolve_sampling(tok, model, max_new_tokens=16), temperature=0.0)
    hf = make_engine("hf", model, tok).generate(prompts, s)
    static = make_engine("hf-static", model, tok).generate(prompts, s)
    assert static.responses == hf.responses
    assert static.logprobs is not None and hf.logprobs is not None
    for a, b in zip(static.logprobs, hf.logprobs):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)


def test_rows_that_stop_early_leave_the_batch_and_the_rest_stay_exact(make_checkpoint):
    """A third of the vocabulary stops a response: most rows end within a few tokens, so the
    batch sheds rows several times while the others go on."""
    model, tok = _load(make_checkpoint(63))
    stops = list(range(3, 3 + tok.vocab_size // 3))
    s = resolve_sampling(tok, model, max_new_tokens=12, stop_token_ids=stops)
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in ("Ana has 7 pens.", "f(x)")]
    engine = make_engine("hf-static", model, tok)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(rollout_batch(engine, prompts, 12, s))
    (batch, logp), (again, _) = runs
    assert torch.equal(batch.input_ids_N_L, again.input_ids_N_L)  # seeded: reproducible
    lengths = batch.response_mask_N_T.sum(-1)
    assert lengths.min() < 4 and lengths.max() > 6  # rows left at different steps
    for row, n in zip(batch.response_ids_N_T.tolist(), lengths.long().tolist()):
        assert all(t not in stops for t in row[: n - 1])  # each ends at its first stop token
    with torch.no_grad():
        trainer = response_logprobs(model, batch)
    mask = batch.response_mask_N_T > 0
    assert logp is not None and (logp - trainer)[mask].abs().max() < 1e-4
