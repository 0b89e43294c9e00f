"""Loading students and teachers from HF checkpoints (references such as `builtin:` are
resolved to paths above the engine, in uniopd.refs; `name` is what messages call the model):
causal LMs through `AutoModelForCausalLM`, image-text models (a config with a `vision_config`)
through `AutoModelForImageTextToText` and their `AutoProcessor` (uniopd.engine.vision).

A checkpoint that cannot be loaded, or a teacher that does not share the student's vocabulary (or
whose chat template differs in a way that cannot be bridged), stops the run at start-up with a
message naming the model: a teacher scoring other token ids would give silently wrong advantages.
"""

from __future__ import annotations

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from uniopd.engine.prompts import PromptFormat, TemplateBridgeError, check_bridge
from uniopd.engine.vision import VisionError, check_processor, is_image_text


class ModelLoadError(RuntimeError):
    pass


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device: cuda was asked for, but torch sees no CUDA device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_attn_implementation(name: str) -> None:
    """flash_attention_2 needs its package (and a GPU): say so before any model loads."""
    if name == "flash_attention_2":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None:
            raise ModelLoadError(
                "attn_implementation: flash_attention_2 needs the flash-attn package, which is "
                "not installed (pip install flash-attn); use sdpa"
            )


def load_tokenizer(path: str, name: str | None = None):
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - HF raises many types; the user needs the path
        raise ModelLoadError(
            f"{name or path}: could not load the tokenizer from {path}: {exc}"
        ) from exc
    if (
        tok.pad_token_id is None
    ):  # many base checkpoints ship without one; EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def is_image_text_checkpoint(path: str) -> bool:
    """Whether the checkpoint at `path` is an image-text model (False when its config cannot be
    read: loading the model then says why)."""
    try:
        return is_image_text(AutoConfig.from_pretrained(path))
    except Exception:  # noqa: BLE001
        return False


def load_processor(path: str, name: str | None = None):
    """The processor of an image-text checkpoint, checked to read images; None for a text model."""
    if not is_image_text_checkpoint(path):
        return None
    try:
        processor = AutoProcessor.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"{name or path}: {path} holds an image-text model (its config has a "
            "vision_config), but no processor that reads images could be loaded from it "
            f"({type(exc).__name__}: {str(exc)[:300]}). Save the model's processor "
            "(AutoProcessor.save_pretrained) into the checkpoint folder"
        ) from exc
    try:
        check_processor(processor, f"{name or path} ({path})")
    except VisionError as exc:
        raise ModelLoadError(str(exc)) from exc
    tok = processor.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return processor


def load_model(
    path: str,
    device: torch.device,
    dtype: torch.dtype,
    trainable: bool,
    name: str | None = None,
    attn_implementation: str = "sdpa",
):
    auto = AutoModelForImageTextToText if is_image_text_checkpoint(path) else AutoModelForCausalLM
    try:
        model = auto.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"{name or path}: could not load the checkpoint at {path}: {type(exc).__name__}: {exc}"
        ) from exc
    model.to(device)
    model.train(trainable)
    if not trainable:
        model.requires_grad_(False)
    return model


def check_same_interface(
    student_tok,
    teacher_tok,
    teacher_ref: str,
    domain: str,
    fmt: PromptFormat | None = None,
    image_tokens: tuple[int, ...] = (),
) -> bool:
    """Teacher and student must share the vocabulary (METHOD 5). The chat template may differ when
    `fmt` is given and the difference can be bridged (uniopd.engine.prompts.check_bridge): then
    the result is True, and the teacher reads prompts rendered in its own template. Without
    `fmt` (a reference model) the templates must be the same.

    `image_tokens`: an image-text student's image tokens. A text teacher (cross-modal) may lack
    exactly those: the student never samples them, so the response tokens stay shared."""
    s, t = student_tok.get_vocab(), teacher_tok.get_vocab()
    if image_tokens and s != t:
        s = {k: v for k, v in s.items() if v not in image_tokens}
    if s != t:
        diff = sorted(set(s.items()) ^ set(t.items()))[:3]
        raise ModelLoadError(
            f"teachers.{domain} ({teacher_ref}): vocabulary differs from the student's"
            + (" (its image tokens aside)" if image_tokens else "")
            + " "
            f"({len(t)} vs {len(s)} tokens; e.g. {diff}); OPD compares log-probs of the same token "
            "ids, so teacher and student must share one tokenizer"
        )
    if fmt is None:
        if (student_tok.chat_template or "") != (teacher_tok.chat_template or ""):
            raise ModelLoadError(
                f"teachers.{domain} ({teacher_ref}): chat template differs from the student's; "
                "the teacher would score the response under a prompt format it was not trained on"
            )
        return False
    try:
        return check_bridge(student_tok, teacher_tok, fmt, f"teachers.{domain} ({teacher_ref})")
    except TemplateBridgeError as exc:
        raise ModelLoadError(
            f"{exc}; the chat template differs from the student's and cannot be bridged"
        ) from exc


def enable_activation_checkpointing(model) -> None:
    """Recompute layer activations in the backward pass (transformers renamed the switch in 5.x;
    the stock GPU image may have either name)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
