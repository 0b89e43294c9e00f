"""Weight decay where the Uni-OPD release (Megatron) puts it with `train.decay_norms_and_biases:
false`: weight matrices shrink by lr x decay per step, biases and norm weights do not; the default
(true) decays them all, as before."""

import pytest
import torch

from uniopd.config.train import TrainConfig
from uniopd.engine import loading
from uniopd.loop.optim import make_optimizer

LR, DECAY = 1e-2, 0.1


def _step_without_gradient(model, **train):
    """One AdamW step on zero gradients: only weight decay moves a parameter."""
    optimizer, _ = make_optimizer(
        model, TrainConfig(lr=LR, weight_decay=DECAY, warmup_steps=0, **train)
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return {n: (before[n], p.detach()) for n, p in model.named_parameters()}


@pytest.fixture
def student(make_checkpoint):
    return loading.load_model(str(make_checkpoint(11)), torch.device("cpu"), torch.float32, True)


def test_release_rule_decays_matrices_and_not_biases_or_norm_weights(student):
    moved = _step_without_gradient(student, decay_norms_and_biases=False)
    kept = {n for n, (a, b) in moved.items() if torch.equal(a, b)}
    # the tiny Qwen2 has q/k/v biases, layer and final RMSNorm weights: all of them 1-D
    assert kept == {n for n, p in student.named_parameters() if p.dim() == 1}
    assert any(n.endswith("bias") for n in kept) and any("norm" in n for n in kept)
    for n, (a, b) in moved.items():
        if n not in kept:
            assert torch.allclose(b, a * (1 - LR * DECAY), rtol=0, atol=1e-7), n


def test_default_decays_every_parameter_as_before(student):
    assert TrainConfig().decay_norms_and_biases  # earlier runs reproduce
    moved = _step_without_gradient(student, decay_norms_and_biases=True)
    for n, (a, b) in moved.items():
        assert torch.allclose(b, a * (1 - LR * DECAY), rtol=0, atol=1e-7), n


def test_a_frozen_parameter_is_in_no_group(student):
    student.model.norm.weight.requires_grad_(False)
    optimizer, _ = make_optimizer(student, TrainConfig(decay_norms_and_biases=False))
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(grouped) == sum(p.requires_grad for p in student.parameters())
    assert all(p is not student.model.norm.weight for p in grouped)
