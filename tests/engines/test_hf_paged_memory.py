"""hf-paged's KV cache on the paper's GPUs, sized by transformers itself.

For every file under experiments/paper/, its student (Qwen3-4B or Qwen3-1.7B, built on the meta
device from the config.json the Hugging Face repository publishes, uniopd/setup/model_configs/) goes
through what hf-paged passes (`batching_config`, with the bf16-mixed weight copy of
`sampling_weights`) into transformers' own manager and `PagedAttentionCache`, whose
`PagedAttentionMemoryHandler` sizes the cache (transformers 5.25,
generation/continuous_batching/cache.py and continuous_api.py `_create_batch_processor`). Only
the device memory query is answered as an H100 or an H200 would answer it, with the student's
training state resident. The cache must come out positive and as large as the file asks.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.generation.continuous_batching import cache as cb_cache
from transformers.generation.continuous_batching.utils import WorkloadHints

from uniopd.config import ConfigError, load_experiment
from uniopd.engine.precision import Precision
from uniopd.engine.rollout.base import EngineOptions
from uniopd.engine.rollout.hf import generation_config
from uniopd.engine.rollout.hf_paged import batching_config, sampling_weights
from uniopd.engine.sampling import SamplingSettings

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "uniopd" / "setup" / "model_configs"
PAPER = ROOT / "experiments" / "paper"
FILES = sorted(p for p in PAPER.rglob("*.yaml") if not p.name.startswith("_"))
# total memory as torch reports it (torch.cuda.mem_get_info()[1] = get_device_properties().
# total_memory): 81090 MiB on an H100 80GB HBM3, 143156 MiB on an H200
GPUS = {"H100": 81090 * 2**20, "H200": 143156 * 2**20}
CUDA_CONTEXT = 2**29  # what mem_get_info counts as used before torch allocates (~0.5 GiB)
TRAINING_BYTES = 4 + 4 + 8  # a parameter's fp32 master, its fp32 gradient, Adam's two moments
QWEN3_EOS, QWEN3_PAD = 151645, 151643


def _student(cfg):
    """The file's student as the trainer holds it (float32), on the meta device."""
    config = AutoConfig.from_pretrained(CONFIGS / Path(cfg.student.model).name.lower())
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(
            config, dtype=torch.float32, attn_implementation=cfg.attn_implementation
        )


def _gpu_memory(total: int, resident: int):
    """transformers' memory query (utils.get_device_and_memory_breakdown) as CUDA answers it:
    allocated = total - free, which includes the context; reserved = torch's pool."""
    return lambda: (torch.device("cuda"), total, resident - CUDA_CONTEXT, resident)


def _paged_cache(model, cfg, total: int) -> tuple[cb_cache.PagedAttentionCache, int]:
    """transformers' cache for one rollout step of `cfg`, and its page size."""
    ro = cfg.rollout
    prompt = cfg.data.max_prompt_tokens
    rows = ro.prompts_per_batch * ro.group_size  # one process holding the whole step: the most
    options = EngineOptions(
        max_batch_tokens=ro.max_batch_tokens,
        kv_cache_tokens=ro.kv_cache_tokens,
        kv_cache_memory_fraction=ro.kv_cache_memory_fraction,
    )
    cb, _ = batching_config(options, torch.device("cuda"), [prompt + ro.max_new_tokens] * rows, 0)
    sampling = SamplingSettings(
        max_new_tokens=ro.max_new_tokens,
        stop_token_ids=(QWEN3_EOS,),
        pad_token_id=QWEN3_PAD,
        temperature=ro.temperature,
        top_p=ro.top_p,
        top_k=ro.top_k,
    )
    n = sum(p.numel() for p in model.parameters())
    resident = n * TRAINING_BYTES + CUDA_CONTEXT
    resident += sum(p.numel() * p.element_size() for p in model.parameters())  # the copy
    # what generate_batch derives from its inputs
    hints = WorkloadHints(
        max_prompt_length=prompt, max_generated_length=ro.max_new_tokens, num_requests=rows
    )
    with mock.patch.object(
        cb_cache, "get_device_and_memory_breakdown", _gpu_memory(total, resident)
    ):
        manager = model.init_continuous_batching(generation_config(sampling), cb, hints)
        cache = cb_cache.PagedAttentionCache(  # as continuous_api's _create_batch_processor does
            config=model.config.get_text_config(),
            continuous_batching_config=manager.continuous_batching_config,
            device=model.device,
            distributed_helper=manager.distributed_helper,
            dtype=model.dtype,
            model_supports_logits_to_keep=model._supports_logits_to_keep(),
        )
    return cache, manager.continuous_batching_config.page_size


@pytest.mark.parametrize("gpu", sorted(GPUS))
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PAPER)))
def test_kv_cache_fits_next_to_the_training_state(path, gpu):
    cfg = load_experiment(path)
    ro = cfg.rollout
    model = _student(cfg)
    with sampling_weights(model, Precision(cfg.precision, torch.device("cpu")).compute_dtype):
        assert model.dtype == torch.bfloat16  # the cache, masks and activations take this dtype
        cache, page = _paged_cache(model, cfg, GPUS[gpu])
    assert model.dtype == torch.float32
    assert cache.max_batch_tokens == (ro.max_batch_tokens or 8192)  # tokens per forward pass
    tokens = cache.num_blocks * page
    eval_new = cfg.eval.max_new_tokens or ro.max_new_tokens
    # asked for: a fixed size, else room for the longest prompt with the longest response
    wanted = ro.kv_cache_tokens or cfg.data.max_prompt_tokens + max(ro.max_new_tokens, eval_new)
    assert tokens >= wanted > 0, f"{gpu}: {tokens} cache tokens, {wanted} wanted"


def test_a_cache_smaller_than_a_response_is_refused_when_the_file_is_read():
    with pytest.raises(ConfigError, match="rollout.kv_cache_tokens: kv_cache_tokens = 8192 cannot"):
        load_experiment(FILES[0], ["rollout.kv_cache_tokens=8192"])


def test_a_row_longer_than_the_fixed_cache_is_named_before_sampling():
    options = EngineOptions(max_batch_tokens=2048, kv_cache_tokens=20480)
    with pytest.raises(ValueError, match="take 20481 cache tokens, more than rollout.kv_cache"):
        batching_config(options, torch.device("cuda"), [20481, 100], 0)
    cb, _ = batching_config(options, torch.device("cuda"), [20480, 100], 0)
    assert cb.num_blocks * cb.page_size == 20480 and cb.max_batch_tokens == 2048
