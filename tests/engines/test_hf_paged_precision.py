"""hf-paged samples in the run's compute dtype. transformers runs `generate_batch`'s forward passes
in a thread of its own (5.25: continuous_api.py, `ContinuousBatchingManager.start`) and autocast
is per thread, so the rollout phase's bf16-mixed autocast never reaches them: the engine samples
with a bfloat16 copy of the weights instead, and puts the float32 masters back afterwards.

A tiny Qwen3 on the CPU, a forward hook on every `q_proj`: what dtype the projections compute in,
and on which thread.
"""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from uniopd.engine.precision import Precision
from uniopd.engine.rollout import make_engine
from uniopd.engine.sampling import SamplingSettings

pytestmark = pytest.mark.slow  # transformers' continuous batching takes seconds on the CPU

PROMPTS = [[5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16]]


def _student() -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    return Qwen3ForCausalLM._from_config(config, attn_implementation="sdpa").float()


def _hook_q_proj(model, seen: list) -> list:
    """One forward hook per q_proj, noting its output dtype and the calling thread."""

    def note(module, inputs, output):
        seen.append((output.dtype, threading.current_thread() is threading.main_thread()))

    return [layer.self_attn.q_proj.register_forward_hook(note) for layer in model.model.layers]


@pytest.mark.parametrize(
    ("mode", "dtype"), [("bf16-mixed", torch.bfloat16), ("fp32", torch.float32)]
)
def test_generation_thread_computes_in_the_run_precision(mode, dtype):
    model = _student()
    masters = {n: (p.data_ptr(), p.detach().clone()) for n, p in model.named_parameters()}
    engine = make_engine("hf-paged", model, None)
    sampling = SamplingSettings(max_new_tokens=6, stop_token_ids=(1,), pad_token_id=0)
    seen: list = []
    hooks = _hook_q_proj(model, seen)
    try:
        with Precision(mode, torch.device("cpu")).autocast():  # as the rollout phase calls it
            out = engine.generate(PROMPTS, sampling)
    finally:
        for h in hooks:
            h.remove()
    assert [len(r) for r in out.responses] and all(0 < len(r) <= 6 for r in out.responses)
    decoding = [d for d, on_main in seen if not on_main]
    assert decoding, "no q_proj call from transformers' generation thread"
    assert {d for d, _ in seen} == {dtype}
    # the float32 masters are back: the same tensors, the same values
    for n, p in model.named_parameters():
        ptr, value = masters[n]
        assert p.dtype == torch.float32 and p.data_ptr() == ptr and torch.equal(p, value), n


def test_masters_come_back_when_sampling_fails():
    from uniopd.engine.rollout.hf_paged import sampling_weights

    model = _student()
    before = [(p.data_ptr(), p.detach().clone()) for p in model.parameters()]
    with pytest.raises(RuntimeError, match="mid-rollout"):
        with sampling_weights(model, torch.bfloat16):
            assert all(p.dtype == torch.bfloat16 for p in model.parameters())
            raise RuntimeError("mid-rollout")
    for p, (ptr, value) in zip(model.parameters(), before):
        assert p.dtype == torch.float32 and p.data_ptr() == ptr and torch.equal(p, value)
    # and the optimizer steps on them as before
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([PROMPTS[0]]), labels=torch.tensor([PROMPTS[0]])).loss.backward()
    opt.step()
    assert all(p.dtype == torch.float32 for p in model.parameters())
