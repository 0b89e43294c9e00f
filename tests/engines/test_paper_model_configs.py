"""The paper's models' config.json files shipped in uniopd/setup/model_configs/, as the Hugging Face repositories
publish them (Qwen/Qwen3-4B, Qwen/Qwen3-1.7B: the students; Qwen/Qwen3-30B-A3B-Instruct-2507:
the strong-to-weak teacher). transformers reads each, and the models they build (on the meta
device: no weights) have the parameter counts their model cards give, so memory estimates made
from them are the real models'.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

CONFIGS = Path(__file__).resolve().parents[2] / "uniopd" / "setup" / "model_configs"

SHAPES = {
    "qwen3-4b": {
        "model_type": "qwen3",
        "hidden_size": 2560,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 9728,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "max_position_embeddings": 40960,
    },
    "qwen3-1.7b": {
        "model_type": "qwen3",
        "hidden_size": 2048,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 6144,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "max_position_embeddings": 40960,
    },
    "qwen3-30b-a3b-instruct-2507": {
        "model_type": "qwen3_moe",
        "hidden_size": 2048,
        "num_hidden_layers": 48,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "moe_intermediate_size": 768,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "vocab_size": 151936,
        "tie_word_embeddings": False,
        "max_position_embeddings": 262144,
    },
}
ROPE_THETA = {"qwen3-4b": 1e6, "qwen3-1.7b": 1e6, "qwen3-30b-a3b-instruct-2507": 1e7}
# billions of parameters, in all and without the input and output embeddings, as the model
# cards round them
CARD_BILLIONS = {
    "qwen3-4b": (4.0, 3.6),
    "qwen3-1.7b": (1.7, 1.4),
    "qwen3-30b-a3b-instruct-2507": (30.5, 29.9),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_transformers_reads_the_published_config(name):
    config = AutoConfig.from_pretrained(CONFIGS / name)
    for field, value in SHAPES[name].items():
        assert getattr(config, field) == value, field
    assert config.rope_parameters["rope_theta"] == ROPE_THETA[name]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_built_model_has_the_model_cards_size(name):
    config = AutoConfig.from_pretrained(CONFIGS / name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    # a tied output head is the input embedding: counted once
    embeddings = {
        id(m.weight): m.weight.numel() for m in (model.get_input_embeddings(), model.lm_head)
    }
    in_all, without_embeddings = CARD_BILLIONS[name]
    assert round(total / 1e9, 1) == in_all
    assert round((total - sum(embeddings.values())) / 1e9, 1) == without_embeddings
