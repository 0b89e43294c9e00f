"""The policy update's forward passes in length buckets (uniopd/loop/update.py with
uniopd/engine/length_buckets.py): a batch of mixed lengths is no longer run at the width of its
longest prompt plus its longest response, and the step it takes is the one its rows give alone,
unpadded, up to float summation order."""

from __future__ import annotations

import copy

import pytest
import torch
from opd_step import opd_config, opd_update
from transformers import AutoModelForCausalLM

from uniopd.algorithms import ppo_clip_loss
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.sequences import pack
from uniopd.loop.scoring import TeacherSignals

ROWS = 48


def _setup(make_checkpoint, **train):
    student = AutoModelForCausalLM.from_pretrained(make_checkpoint(91), dtype=torch.float32)
    cfg = opd_config(make_checkpoint(91), make_checkpoint(92), max_grad_norm=0.0, **train)
    g = torch.Generator().manual_seed(3)
    # prompts of 4-16 tokens, responses of 1-80: the quickstart's spread of lengths, in small
    p_len = torch.randint(4, 17, (ROWS,), generator=g).tolist()
    t_len = torch.randint(1, 81, (ROWS,), generator=g).tolist()
    prompts = [torch.randint(3, 200, (n,), generator=g).tolist() for n in p_len]
    responses = [torch.randint(3, 200, (n,), generator=g).tolist() for n in t_len]
    batch = pack(prompts, responses, 0)
    teacher = -3 * torch.rand(batch.response_mask_N_T.shape, generator=g)
    scored = TeacherSignals(["math"] * ROWS, teacher_logp_N_T=teacher * batch.response_mask_N_T)
    return student, cfg, batch, scored, prompts, responses


def _sgd_step(student, cfg, batch, scored):
    """One update with plain SGD at lr 1, so the weights move by minus the gradient exactly."""
    before = [p.detach().clone() for p in student.parameters()]
    result = opd_update(student, torch.optim.SGD(student.parameters(), lr=1.0), batch, scored, cfg)
    return result, [b - p.detach() for b, p in zip(before, student.parameters())]


def test_the_update_runs_its_passes_over_few_padding_cells(make_checkpoint):
    student, cfg, batch, scored, _, _ = _setup(make_checkpoint)
    cells = []
    hook = student.register_forward_pre_hook(
        lambda _, args, kwargs: cells.append(kwargs["input_ids"].numel()), with_kwargs=True
    )
    opd_update(student, torch.optim.SGD(student.parameters(), lr=1e-3), batch, scored, cfg)
    hook.remove()
    padded = batch.input_ids_N_L.numel()
    real = int(batch.attention_mask_N_L.sum())
    assert padded > 1.5 * real  # the batch's own layout: a third of its cells padding or more
    # one epoch, pi_old read off its pass: before, one pass over every cell of the batch
    assert len(cells) > 1 and real <= sum(cells) < 0.8 * padded


@pytest.mark.slow  # (48 rows, each also run alone)
def test_the_bucketed_step_is_the_unpadded_rows_step(make_checkpoint):
    student, cfg, batch, scored, prompts, responses = _setup(make_checkpoint)
    reference = copy.deepcopy(student)
    result, moved = _sgd_step(student, cfg, batch, scored)

    # the same loss over each row's log-probs with the row alone (METHOD 2, one epoch: rho = 1)
    t = batch.response_mask_N_T.shape[1]
    rows = []
    for p, r in zip(prompts, responses):
        lp = response_logprobs(reference, pack([p], [r], 0))[0]
        rows.append(torch.nn.functional.pad(lp, (0, t - len(r))))
    logp = torch.stack(rows)
    mask = batch.response_mask_N_T
    teacher = scored.teacher_logp_N_T
    loss, _ = ppo_clip_loss(
        logp, logp.detach(), (teacher - logp.detach()) * mask, mask, teacher_logp=teacher
    )
    loss.backward()

    assert torch.allclose(result.old_logp_N_T, logp.detach(), atol=1e-5)
    assert result.loss == pytest.approx(float(loss.detach()), rel=1e-5, abs=1e-7)
    for got, p in zip(moved, reference.parameters()):
        assert torch.allclose(got, p.grad, atol=1e-7, rtol=1e-4)


@pytest.mark.slow  # (two updates of two epochs)
def test_ppo_epochs_in_buckets_step_as_in_the_batch_layout(make_checkpoint, monkeypatch):
    """Two PPO epochs (the clip active in the second) take the same steps either way."""
    from uniopd.engine import length_buckets

    student, cfg, batch, scored, _, _ = _setup(make_checkpoint, epochs=2)
    plain = copy.deepcopy(student)
    got, moved = _sgd_step(student, cfg, batch, scored)
    monkeypatch.setattr(length_buckets, "BUCKET_COST_CELLS", 10**9)  # one bucket: the batch
    want, plain_moved = _sgd_step(plain, cfg, batch, scored)
    assert got.loss == pytest.approx(want.loss, rel=1e-5)
    assert got.entropy == pytest.approx(want.entropy, rel=1e-5)
    assert got.clip_frac == pytest.approx(want.clip_frac, abs=1e-3)
    for a, b in zip(moved, plain_moved):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-4)
