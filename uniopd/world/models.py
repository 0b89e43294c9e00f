"""Tiny Qwen2-architecture causal LMs built from config and saved in HF format.

They load with `AutoModelForCausalLM.from_pretrained` like any checkpoint, which is the point: every
code path the tiny world exercises is the one a real Qwen or Llama checkpoint goes through.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from uniopd.world.recipe import active_recipe

# name -> (hidden size, layers, attention heads)
SIZES = {
    "small": (64, 3, 4),  # the student: one layer fewer
    "base": (64, 4, 4),  # the domain teachers
    "large": (96, 4, 4),  # a stronger teacher for the strong-to-weak setting
}


def model_config(
    size: str, vocab_size: int, eos_token_id: int | None = None, pad_token_id: int | None = None
) -> Qwen2Config:
    hidden, layers, heads = SIZES[size]
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def planned_config(name: str) -> Qwen2Config:
    """The config built-in model `name` gets when it is built, known before building: enough to
    check its module names (a LoRA target) without the minutes the build takes. The vocabulary
    size is the recipe's target; the trained tokenizer's may differ by a few special tokens."""
    recipe = active_recipe()
    return model_config(recipe["models"][name]["size"], recipe["tokenizer"]["vocab_size"])


def build_model(size: str, tokenizer: PreTrainedTokenizerBase, seed: int) -> Qwen2ForCausalLM:
    import torch

    config = model_config(size, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)
