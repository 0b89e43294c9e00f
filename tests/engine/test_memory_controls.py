"""Memory controls: chunked log-probs equal the full-vocabulary ones (values and gradients),
token-budget micro-batches cover every row once within the budget and give the whole-batch
update, trimmed micro-batches score like untrimmed ones, gradient checkpointing and the attention
kernel change nothing but memory."""

import pytest
import torch
from opd_step import opd_config, opd_update

from uniopd.engine import loading
from uniopd.engine.batching import micro_batches
from uniopd.engine.logprobs import (
    response_hidden,
    response_logits,
    response_logprobs,
    response_topk,
    sampled_logprobs,
    token_logprobs,
)
from uniopd.engine.sequences import pack
from uniopd.engine.teachers import TeacherPool
from uniopd.loop.optim import make_optimizer
from uniopd.loop.scoring import TeacherSignals

CPU = torch.device("cpu")


def _batch(tok, vocab, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(5, vocab, (2 + 3 * (i % 3),), generator=g).tolist() for i in range(n)]
    responses = [
        torch.randint(5, vocab, (1 + 4 * (i % 4),), generator=g).tolist() for i in range(n)
    ]
    return pack(prompts, responses, tok.pad_token_id)


@pytest.fixture
def model_and_tok(make_checkpoint):
    path = str(make_checkpoint(11))
    return loading.load_model(path, CPU, torch.float32, True), loading.load_tokenizer(path)


def test_chunked_logprobs_and_gradients_equal_the_full_softmax(model_and_tok):
    model, tok = model_and_tok
    batch = _batch(tok, model.config.vocab_size)
    mask = batch.response_mask_N_T
    full = sampled_logprobs(response_logits(model, batch), batch.response_ids_N_T) * mask
    (full.sum()).backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    hidden, head = response_hidden(model, batch)
    chunked, _, _, _ = token_logprobs(hidden, head, batch.response_ids_N_T, mask, chunk_tokens=3)
    chunked.sum().backward()
    assert torch.allclose(chunked, full, atol=1e-5)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, want[n], atol=1e-5, rtol=1e-4), n


def test_chunked_topk_is_the_full_topk(model_and_tok):
    model, tok = model_and_tok
    batch = _batch(tok, model.config.vocab_size)
    with torch.no_grad():
        want_logp, want_ids = torch.log_softmax(response_logits(model, batch), -1).topk(4, -1)
        got_logp, got_ids = response_topk(model, batch, 4, chunk_tokens=5)
    real = batch.response_mask_N_T.bool()
    assert torch.allclose(got_logp[real], want_logp[real], atol=1e-5)
    assert torch.equal(got_ids[real], want_ids[real])


def test_token_budget_micro_batches_cover_every_row_once_within_the_budget(model_and_tok):
    _, tok = model_and_tok
    batch = _batch(tok, 200, n=11)
    for budget in (1, 20, 40, 1000):
        parts = micro_batches(batch, 0, budget)
        rows = sorted(int(i) for c in parts for i in c)
        assert rows == list(range(11))
        for c in parts:
            sub = batch.rows(c).trimmed()
            cells = sub.input_ids_N_L.numel()
            assert cells <= budget or len(c) == 1, (budget, cells, len(c))
    assert len(micro_batches(batch, 3, 1000)) == 4  # the row cap still holds


def test_trimmed_micro_batch_scores_like_the_padded_one(model_and_tok):
    model, tok = model_and_tok
    batch = _batch(tok, model.config.vocab_size)
    rows = torch.tensor([0, 3])  # the short rows of a batch padded for long ones
    padded = batch.rows(rows)
    trimmed = padded.trimmed()
    assert trimmed.input_ids_N_L.shape[1] < padded.input_ids_N_L.shape[1]
    with torch.no_grad():
        a = response_logprobs(model, padded)
        b = response_logprobs(model, trimmed)
    w = b.shape[1]
    assert torch.allclose(a[:, :w], b, atol=1e-5) and not a[:, w:].any()


def _update(student_path, teacher_path, tokens_budget=0, checkpointing=False, attn="sdpa"):
    student = loading.load_model(student_path, CPU, torch.float32, True, attn_implementation=attn)
    if checkpointing:
        loading.enable_activation_checkpointing(student)
    teacher = loading.load_model(teacher_path, CPU, torch.float32, False)
    tok = loading.load_tokenizer(student_path)
    cfg = opd_config(
        student_path, teacher_path, lr=1e-3, epochs=2, max_tokens_per_micro_batch=tokens_budget
    )
    batch = _batch(tok, student.config.vocab_size, n=8)
    pool = TeacherPool({"t": teacher}, {"math": "t"})
    domains = ["math"] * 8
    scored = TeacherSignals(domains, teacher_logp_N_T=pool.logprobs(batch, domains, 0, None, 4, 30))
    optimizer, _ = make_optimizer(student, cfg.train)
    result = opd_update(student, optimizer, batch, scored, cfg)
    return result.loss, torch.cat([p.detach().flatten() for p in student.parameters()])


@pytest.mark.parametrize(
    "setting", [{"tokens_budget": 30}, {"checkpointing": True}, {"attn": "eager"}]
)
def test_memory_settings_leave_the_update_as_it_is(make_checkpoint, setting):
    s, t = str(make_checkpoint(11)), str(make_checkpoint(12))
    start = torch.cat(
        [p.flatten() for p in loading.load_model(s, CPU, torch.float32, False).parameters()]
    )
    loss, weights = _update(s, t)
    loss2, weights2 = _update(s, t, **setting)
    assert loss2 == pytest.approx(loss, rel=1e-5, abs=1e-7)
    # the same step up to float32 sums in another order (Adam's g / (|g| + eps) magnifies them
    # on near-zero gradients)
    step, off = float((weights - start).norm()), float((weights2 - weights).norm())
    assert step > 1e-3 and off <= 1e-4 * step, (off, step)
