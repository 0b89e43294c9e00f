"""The Qwen-VL family (the release's students) through the engine: a tiny Qwen2-VL built from
config, its real image processor and processor logic. Its 3-D rotary positions come from the image
grid and each token's modality: log-probs must not depend on the batch a row is in (left padding),
and a batch's greedy rollouts must be each row's own.

Qwen2VLProcessor's constructor insists on a video processor, which needs torchvision (not
installed here); the processor object is assembled from its parts instead. Everything that turns
a chat with images into ids and pixels is Qwen2VLProcessor's own code."""

import dataclasses
import random

import pytest
import torch

from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.prompts import PromptFormat
from uniopd.engine.rollout.hf import HFEngine
from uniopd.engine.sampling import SamplingSettings
from uniopd.engine.sequences import pack
from uniopd.engine.vision import encode_inputs, image_token_ids, uses_multimodal_rope
from uniopd.tasks import shapes

transformers = pytest.importorskip("transformers")

TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


@pytest.fixture(scope="module")
def qwen_vl(tokenizer_dir):
    from transformers import (
        AutoTokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
        Qwen2VLProcessor,
    )

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": SPECIAL})
    tok.chat_template, tok.padding_side = TEMPLATE, "left"
    processor = Qwen2VLProcessor.__new__(Qwen2VLProcessor)  # see the module doc
    processor.image_processor = Qwen2VLImageProcessorPil(
        min_pixels=32 * 32, max_pixels=32 * 32, patch_size=8, merge_size=2, temporal_patch_size=2
    )
    processor.tokenizer, processor.video_processor, processor.chat_template = tok, None, TEMPLATE
    processor.image_token, processor.video_token = "<|image_pad|>", "<|video_pad|>"
    processor.image_token_id = tok.convert_tokens_to_ids("<|image_pad|>")
    processor.video_token_id = tok.convert_tokens_to_ids("<|video_pad|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            max_position_embeddings=512,
        ),
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=64,
            num_heads=2,
            patch_size=8,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    return processor, Qwen2VLForConditionalGeneration(config).eval()


def test_qwen_vl_rows_score_and_sample_the_same_in_any_batch(qwen_vl):
    processor, model = qwen_vl
    tok = processor.tokenizer
    assert uses_multimodal_rope(model)
    rng = random.Random(0)
    problems = [
        # prompts of different lengths, so rows are padded differently in the batch
        dataclasses.replace(shapes.make_problem(rng, 1), id=f"q{i}")
        for i in range(3)
    ]
    problems = [dataclasses.replace(p, prompt=p.prompt * (i + 1)) for i, p in enumerate(problems)]
    ids, vision = encode_inputs(tok, processor, problems, PromptFormat())
    assert len({len(i) for i in ids}) == 3
    assert all(sum(t == processor.image_token_id for t in row) == 4 for row in ids)  # 2 x 2 merged
    responses = [tok(p.solution)["input_ids"] for p in problems]
    batch = pack(ids, responses, tok.pad_token_id, vision)
    with torch.no_grad():
        together = response_logprobs(model, batch)
        for i in range(3):
            alone = response_logprobs(model, batch.rows(torch.tensor([i])).trimmed())
            assert torch.allclose(together[i, : alone.shape[1]], alone[0], atol=1e-5)
    settings = SamplingSettings(
        max_new_tokens=5,
        stop_token_ids=(tok.eos_token_id,),
        pad_token_id=tok.pad_token_id,
        temperature=0.0,
        banned_token_ids=image_token_ids(processor),
    )
    engine = HFEngine(model, tok)
    got = engine.generate(ids, settings, vision)
    for i in range(3):
        assert engine.generate([ids[i]], settings, [vision[i]]).responses[0] == got.responses[i]
