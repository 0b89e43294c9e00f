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


# --- image-text models (the visual domain): LLaVA's classes, a tiny SigLIP vision tower in front
# of the tiny Qwen2 language model. Any image-text class with a processor would do; LLaVA builds
# and runs here without torchvision, which the Qwen-VL processors need.

IMAGE_TOKEN = "<image>"
# (hidden size, layers, attention heads, image side, patch side): one 8-pixel patch per cell of
# the visual domain's 4 x 4 grid, so a picture is 16 image tokens
VISION = (32, 1, 2, 32, 8)
# the tiny world's chat template (ChatML), also rendering content given as parts, the form
# processors use for images; a plain string renders exactly as the text models' template does
IMAGE_TEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def is_image_text_model(name: str) -> bool:
    """Whether built-in model `name` is an image-text model in the active world."""
    return active_recipe()["models"].get(name, {}).get("kind") == "image-text"


def image_text_processor(tokenizer: PreTrainedTokenizerBase):
    """A LLaVA processor over a copy of the world's tokenizer with the image token added."""
    import copy

    from transformers import LlavaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tok.chat_template = IMAGE_TEXT_CHAT_TEMPLATE
    _, _, _, side, patch = VISION
    return LlavaProcessor(
        image_processor=SiglipImageProcessorPil(size={"height": side, "width": side}),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="full",
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=0,
        chat_template=IMAGE_TEXT_CHAT_TEMPLATE,
    )


def build_image_text_model(size: str, processor, seed: int, language_model=None):
    """A LLaVA model of `size`'s language model; `language_model` (a Qwen2ForCausalLM of that
    size), when given, supplies the language weights, the image token's embedding row new."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, SiglipVisionConfig

    tok = processor.tokenizer
    hidden, layers, heads, side, patch = VISION
    config = LlavaConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            image_size=side,
            patch_size=patch,
        ),
        text_config=model_config(size, len(tok), tok.eos_token_id, tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    if language_model is not None:
        weights = language_model.model.state_dict()
        rows = weights["embed_tokens.weight"]
        embed = model.get_input_embeddings().weight.detach().clone()
        embed[: rows.shape[0]] = rows
        weights["embed_tokens.weight"] = embed
        model.model.language_model.load_state_dict(weights)
    return model
