"""Image-text students and teachers through the engine: prompts with images, log-probs and
rollouts that read the pixels, and the checks that refuse what cannot work (uniopd/engine/vision.py)."""

import random
from dataclasses import replace

import pytest
import torch

from uniopd.engine import loading
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.prompts import PromptFormat
from uniopd.engine.rollout.hf import HFEngine
from uniopd.engine.sampling import SamplingSettings
from uniopd.engine.sequences import pack
from uniopd.engine.vision import encode_inputs, image_token_ids
from uniopd.tasks import shapes
from uniopd.tasks.problem import Problem

CPU = torch.device("cpu")


def _problems(n: int, seed: int = 0) -> list[Problem]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = shapes.make_problem(rng, rng.choice(shapes.LEVELS))
        out.append(replace(p, id=f"v{i}"))
    return out


@pytest.fixture(scope="module")
def mm(make_image_text_checkpoint):
    path = str(make_image_text_checkpoint(5))
    processor = loading.load_processor(path, "student")
    model = loading.load_model(path, CPU, torch.float32, trainable=False)
    return processor, model


def test_images_become_the_models_image_tokens_where_the_prompt_places_them(mm):
    processor, _ = mm
    tok, image = processor.tokenizer, image_token_ids(processor)
    assert len(image) == 1
    p = _problems(1)[0]
    placed = replace(p, prompt=f"Look: <image> {p.prompt}")
    text = replace(p, images=(), id="t")
    ids, vision = encode_inputs(tok, processor, [p, placed, text], PromptFormat())
    n = [sum(t == image[0] for t in row) for row in ids]
    assert n == [16, 16, 0]  # 4 x 4 patches of 8 pixels
    assert vision[2] is None and vision[0]["pixel_values"].shape == (1, 3, 32, 32)
    decoded = [tok.decode(row) for row in ids[:2]]
    assert decoded[0].index("<image>") < decoded[0].index("How many")  # no placeholder: first
    assert decoded[1].index("Look:") < decoded[1].index("<image>")  # the placeholder's place
    with pytest.raises(ValueError, match="raw has no place for images"):
        encode_inputs(tok, processor, [p], PromptFormat(template="raw"))


def test_log_probs_read_the_picture_and_do_not_depend_on_the_batch(mm):
    processor, model = mm
    tok = processor.tokenizer
    problems = _problems(3)
    ids, vision = encode_inputs(tok, processor, problems, PromptFormat())
    responses = [tok(p.solution)["input_ids"] for p in problems]
    batch = pack(ids, responses, tok.pad_token_id, vision)
    together = response_logprobs(model, batch)
    for i in range(3):
        alone = response_logprobs(model, batch.rows(torch.tensor([i])).trimmed())
        width = alone.shape[1]
        assert torch.allclose(together[i, :width], alone[0], atol=1e-5)
    # another picture behind the same tokens: other log-probs (the pixels reach the model)
    swapped = pack(ids, responses, tok.pad_token_id, [vision[1], vision[0], vision[2]])
    assert not torch.allclose(response_logprobs(model, swapped)[0], together[0], atol=1e-4)


def test_rollouts_take_the_images_and_never_sample_an_image_token(mm):
    processor, model = mm
    tok, image = processor.tokenizer, image_token_ids(processor)
    problems = _problems(4)
    ids, vision = encode_inputs(tok, processor, problems, PromptFormat())

    def favour_image_token(module, inputs, output):  # the likeliest next token everywhere
        output = output.clone()
        output[..., image[0]] += 100.0
        return output

    hook = model.lm_head.register_forward_hook(favour_image_token)
    try:
        engine = HFEngine(model, tok)
        kwargs = dict(max_new_tokens=6, stop_token_ids=(tok.eos_token_id,), pad_token_id=0)
        free = engine.generate(ids, SamplingSettings(**kwargs, temperature=0.0), vision)
        assert all(image[0] in row for row in free.responses)
        banned = SamplingSettings(**kwargs, temperature=0.0, banned_token_ids=image)
        got = engine.generate(ids, banned, vision)
        assert not any(image[0] in row for row in got.responses)
        # greedy rows of a batch are each row's own greedy response (images kept with their row)
        for i in range(4):
            one = engine.generate([ids[i]], banned, [vision[i]])
            assert one.responses[0] == got.responses[i]
    finally:
        hook.remove()


def test_an_image_text_checkpoint_without_its_processor_is_refused(
    make_image_text_checkpoint, tmp_path
):
    import shutil

    from transformers import AutoTokenizer

    src = make_image_text_checkpoint(5)
    for f in src.iterdir():
        if f.name in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, tmp_path / f.name)
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path)  # the tokenizer alone
    with pytest.raises(loading.ModelLoadError, match=r"student.model: .*image-text model") as e:
        loading.load_processor(str(tmp_path), "student.model")
    assert "Save the model's processor" in str(e.value)


def test_a_text_teacher_may_lack_exactly_the_students_image_tokens(
    make_image_text_checkpoint, make_checkpoint, tmp_path
):
    processor = loading.load_processor(str(make_image_text_checkpoint(5)), "student")
    text = loading.load_tokenizer(str(make_checkpoint(1)))
    image = image_token_ids(processor)
    fmt = PromptFormat()
    assert not loading.check_same_interface(processor.tokenizer, text, "t", "visual", fmt, image)
    with pytest.raises(loading.ModelLoadError, match="vocabulary differs"):
        loading.check_same_interface(processor.tokenizer, text, "t", "visual", fmt)
    other = loading.load_tokenizer(str(make_checkpoint(1)))
    other.add_tokens(["<|extra|>"])
    with pytest.raises(loading.ModelLoadError, match="image tokens aside"):
        loading.check_same_interface(processor.tokenizer, other, "t", "visual", fmt, image)


def test_a_text_reader_gets_the_rendering_and_no_placeholder():
    p = _problems(1)[0]
    p = replace(p, prompt=f"<image> {p.prompt}")
    fmt = PromptFormat(teacher_templates={"visual": "{rendering} {prompt}"}).for_text_reader()
    (message,) = fmt.messages(p)
    assert message["content"] == f"{p.meta['rendering']} {p.prompt.removeprefix('<image> ')}"
    student = PromptFormat(teacher_templates={"visual": "{rendering} {prompt}"})
    assert student.messages(p)[0]["content"] == p.prompt  # the student's own prompt is unchanged
    missing = replace(p, meta={"level": 1})
    with pytest.raises(ValueError, match="no field 'rendering'"):
        fmt.messages(missing)


def test_processor_that_cannot_read_an_image_names_the_row(mm):
    processor, _ = mm
    p = replace(_problems(1)[0], images=(b"\x89PNG\r\n\x1a\n broken",), id="row-7")
    with pytest.raises(ValueError, match="row row-7: the processor could not read its images"):
        encode_inputs(processor.tokenizer, processor, [p], PromptFormat())
