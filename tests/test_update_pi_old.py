"""pi_old without a pass of its own (uniopd/loop/update.py): with one micro-batch, the first PPO
epoch's forward pass comes before any optimizer step, so its log-probs are pi_old's; the update
reads them there instead of running the student once more. With several micro-batches the
separate no-grad pass stays (the first epoch steps only after all of them, but their graphs
would all have to be held to read pi_old first)."""

from __future__ import annotations

import copy

import torch
from opd_step import opd_config, opd_update
from transformers import AutoModelForCausalLM

from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.sequences import pack
from uniopd.loop.scoring import TeacherSignals


def _setup(make_checkpoint, **train):
    student = AutoModelForCausalLM.from_pretrained(make_checkpoint(71), dtype=torch.float32)
    cfg = opd_config(make_checkpoint(71), make_checkpoint(72), epochs=2, **train)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 200, (n,), generator=g).tolist() for n in (5, 3, 4, 6)]
    responses = [torch.randint(3, 200, (n,), generator=g).tolist() for n in (6, 2, 4, 5)]
    batch = pack(prompts, responses, 0)
    teacher = -torch.rand(batch.response_mask_N_T.shape, generator=g) * batch.response_mask_N_T
    return student, cfg, batch, TeacherSignals(["math"] * 4, teacher_logp_N_T=teacher)


def _forward_passes(student, cfg, batch, scored):
    passes = []
    hook = student.register_forward_hook(lambda *_: passes.append(1))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    result = opd_update(student, optimizer, batch, scored, cfg)
    hook.remove()
    return len(passes), result


def test_one_micro_batch_takes_pi_old_from_the_first_epoch(make_checkpoint):
    student, cfg, batch, scored = _setup(make_checkpoint)
    before = copy.deepcopy(student)
    passes, result = _forward_passes(student, cfg, batch, scored)
    assert passes == cfg.train.epochs  # no pass for pi_old alone
    with torch.no_grad():
        want = response_logprobs(before, batch)
    assert torch.equal(result.old_logp_N_T, want)  # the same numbers a separate pass gives
    assert any(not torch.equal(a, b) for a, b in zip(student.parameters(), before.parameters()))


def test_several_micro_batches_keep_the_separate_pi_old_pass(make_checkpoint):
    student, cfg, batch, scored = _setup(make_checkpoint, micro_batch_size=2)
    passes, _ = _forward_passes(student, cfg, batch, scored)
    assert passes == 2 + cfg.train.epochs * 2  # pi_old per micro-batch, then each epoch's
