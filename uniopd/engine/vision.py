"""Image inputs of image-text-to-text students and teachers (the Qwen-VL family, LLaVA, ...).

A model whose config has a `vision_config` is multimodal: it loads with
`AutoModelForImageTextToText` and its `AutoProcessor`, which must have an image processor and an
image token (else the run stops at start, naming the checkpoint). A problem with images becomes:

- its chat, with each `<image>` placeholder of the user turns (or, without placeholders, every
  image before the last user turn's question) as a `{"type": "image"}` content part, rendered by
  the processor's chat template, so each family writes its own image markers;
- the processor's expansion of each marker into the model's image tokens, and its pixel inputs
  (`pixel_values`, plus `image_grid_thw` for the Qwen-VL family).

Pixel inputs travel with their row (`SequenceBatch.vision`, one dict per row, None for a row
without images) and are concatenated along the first dimension for a forward pass, which is how
every image-text model in transformers takes a batch's images.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

from uniopd.data.images import PLACEHOLDER, open_image
from uniopd.engine.prompts import PromptFormat, encode_problems
from uniopd.tasks.problem import Problem

RowVision = dict[str, torch.Tensor] | None


class VisionError(ValueError):
    """An image-text model or processor that cannot be used, or an image it cannot read."""


def is_image_text(config) -> bool:
    """Whether a model config (a transformers PretrainedConfig) describes an image-text model."""
    return getattr(config, "vision_config", None) is not None


def image_token_ids(processor) -> tuple[int, ...]:
    """The ids the processor expands images into; a student never samples them (a text teacher
    has no embedding for them)."""
    ids = [getattr(processor, "image_token_id", None)]
    tok = getattr(processor, "tokenizer", None)
    for name in ("image_token", "boi_token", "eoi_token"):
        token = getattr(processor, name, None)
        if token and tok is not None:
            ids.append(tok.convert_tokens_to_ids(token))
    return tuple(sorted({int(i) for i in ids if i is not None and i >= 0}))


def check_processor(processor, name: str) -> None:
    """An image-text model needs a processor with an image processor and an image token."""
    if getattr(processor, "image_processor", None) is None or not image_token_ids(processor):
        raise VisionError(
            f"{name}: the model is an image-text model (its config has a vision_config), but "
            f"its processor ({type(processor).__name__}) is text-only: no image processor or "
            "image token. Save the model's processor (AutoProcessor.save_pretrained) into the "
            "checkpoint folder"
        )


def image_messages(messages: list[dict], n_images: int) -> list[dict]:
    """The chat with `<image>` placeholders as image content parts (without placeholders, the
    images go first in the last user turn)."""
    placed = sum(str(m.get("content", "")).count(PLACEHOLDER) for m in messages)
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    out = []
    for i, message in enumerate(messages):
        text = str(message.get("content", ""))
        parts: list[dict] = []
        if not placed and i == last_user:
            parts += [{"type": "image"} for _ in range(n_images)]
        for j, piece in enumerate(text.split(PLACEHOLDER)):
            if j:
                parts.append({"type": "image"})
            if piece:
                parts.append({"type": "text", "text": piece})
        out.append({**message, "content": parts})
    return out


def encode_inputs(
    tokenizer,
    processor,
    problems: Sequence[Problem],
    fmt: PromptFormat,
    prompts: Sequence[str] | None = None,
) -> tuple[list[list[int]], list[RowVision] | None]:
    """Prompt token ids of each problem asked as `fmt` says (with `prompts`, those questions
    instead of theirs), and, for an image-text model (a `processor`), each one's pixel inputs
    (None for a row without images) with its image markers expanded into the model's image
    tokens. A text model gets (ids, None)."""
    if processor is None:
        return encode_problems(tokenizer, problems, fmt, prompts), None
    if fmt.template == "raw":
        raise VisionError(
            "data.template: raw has no place for images; an image-text student needs the chat "
            "template (its processor's) to put its image tokens in the prompt"
        )
    ids: list[list[int]] = []
    vision: list[RowVision] = []
    for i, problem in enumerate(problems):
        question = None if prompts is None else prompts[i]
        chat = image_messages(fmt.messages(problem, question), len(problem.images))
        text = processor.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False, **fmt.chat_template_kwargs
        )
        if not problem.images:
            ids.append(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
            vision.append(None)
            continue
        try:
            images = [open_image(ref) for ref in problem.images]
            out = processor(
                text=[text], images=images, return_tensors="pt", add_special_tokens=False
            )
        except Exception as exc:  # noqa: BLE001 - processors raise many types
            raise VisionError(
                f"row {problem.id}: the processor could not read its images "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        ids.append(out["input_ids"][0].tolist())
        # the image inputs (pixel_values, image_grid_thw, image_sizes, ...), not per-token ones
        vision.append({k: v for k, v in out.items() if k.startswith(("pixel_", "image_"))})
    return ids, vision


def batch_inputs(vision: Sequence[RowVision] | None) -> dict[str, torch.Tensor]:
    """The forward keywords of a batch's rows: each row's pixel inputs, in row order."""
    rows = [v for v in vision or () if v]
    if not rows:
        return {}
    return {k: torch.cat([v[k] for v in rows]) for k in rows[0]}


def _rope_owner(model):
    """The module that computes the Qwen-VL family's 3-D rotary positions, or None."""
    for module in (model, getattr(model, "model", None), getattr(model, "base_model", None)):
        if module is not None and hasattr(module, "get_rope_index"):
            return module
    return None


def uses_multimodal_rope(model) -> bool:
    """The Qwen-VL family computes 3-D rotary positions from the image grid itself: it must not
    be given the 1-D position ids a text model gets."""
    return _rope_owner(model) is not None


def model_inputs(model, input_ids: torch.Tensor, vision: Sequence[RowVision] | None) -> dict:
    """The forward keywords of a batch's images: the rows' pixel inputs, and, for a model whose
    rotary positions follow the image grid (transformers 5's Qwen-VL family), each token's
    modality (1 on image tokens), derived from the ids so that it follows any padding."""
    kwargs = batch_inputs(vision)
    owner = _rope_owner(model)
    if not kwargs or owner is None:
        return kwargs
    wants = inspect.signature(owner.get_rope_index).parameters
    if "mm_token_type_ids" in wants:  # earlier releases find the image tokens themselves
        types = torch.zeros_like(input_ids)
        for kind, name in ((1, "image_token_id"), (2, "video_token_id")):
            token = getattr(model.config, name, None)
            if token is not None:
                types[input_ids == token] = kind
        kwargs["mm_token_type_ids"] = types
    return kwargs
