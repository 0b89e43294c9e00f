"""LoRA students through peft: an adapter on frozen base weights, checked, attached, resumed and
merged back into a plain checkpoint.

A LoRA student is a `peft.PeftModel`: it is called and sampled like the causal LM it wraps
(`model(input_ids=...).logits`, `model.generate(...)`), only the adapter's parameters require
grad, and `save_pretrained` writes the adapter alone (adapter_config.json, naming the base, and
adapter_model.safetensors). `model.get_base_model()` is the wrapped CausalLM, with the adapter
layers in place, for code that calls the decoder and the LM head separately.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig
from transformers.pytorch_utils import Conv1D

from uniopd.engine.loading import ModelLoadError

ADAPTER_CONFIG = "adapter_config.json"
# the layer types peft's LoRA can wrap; a name matching only other modules (an MLP block, an
# activation) would fail inside peft with a less helpful message
ADAPTABLE = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, Conv1D)


class LoraError(ModelLoadError):
    """A LoRA setting or adapter checkpoint that cannot work (bad input, exit code 2)."""


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """Last names of the model's linear layers, in model order: what target_modules can name."""
    names = (
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if isinstance(m, (torch.nn.Linear, Conv1D))
    )
    return list(dict.fromkeys(names))


def check_lora_targets(
    model: str | PretrainedConfig | torch.nn.Module,
    target_modules: Sequence[str],
    name: str | None = None,
) -> None:
    """Raise LoraError unless every target names a layer of `model`: a loaded module, a
    PretrainedConfig, or a checkpoint path, whose module tree is built on the meta device from
    its config alone (no weights read, no memory taken). Matching is peft's for a list of names:
    a module matches a target equal to its dotted path or to a dotted suffix of it."""
    label = name or (model if isinstance(model, str) else type(model).__name__)
    module = model if isinstance(model, torch.nn.Module) else _skeleton(model, label)
    found = [(n, m) for n, m in module.named_modules() if n]
    for target in target_modules:
        hits = [m for n, m in found if n == target or n.endswith("." + target)]
        if not any(isinstance(m, ADAPTABLE) for m in hits):
            what = "is not a module of" if not hits else "names no layer LoRA can adapt in"
            raise LoraError(
                f"{target!r} {what} {label} (its linear layers: "
                f"{', '.join(linear_layer_names(module))})"
            )


def _skeleton(model: str | PretrainedConfig, label: str) -> torch.nn.Module:
    try:
        config = model if isinstance(model, PretrainedConfig) else AutoConfig.from_pretrained(model)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except Exception as exc:  # noqa: BLE001 - HF raises many types; the user needs the model
        raise ModelLoadError(
            f"{label}: could not read the model's config: {type(exc).__name__}: {exc}"
        ) from exc


def apply_lora(
    model: torch.nn.Module,
    r: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str],
    name: str | None = None,
):
    """`model` wrapped in a fresh LoRA adapter (B = 0, so it starts as the same function); only
    the adapter trains."""
    from peft import LoraConfig, get_peft_model

    check_lora_targets(model, target_modules, name)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft says int, but only uses alpha / r
        lora_dropout=dropout,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_adapter(model: torch.nn.Module, adapter: str | Path, name: str | None = None):
    """`model` (the base weights) with the trainable adapter saved at `adapter` (a resumed run)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    except Exception as exc:  # noqa: BLE001
        raise LoraError(
            f"{name or adapter}: could not load the LoRA adapter at {adapter}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def merge_adapter(checkpoint: str | Path, out: str | Path, base: str | None = None) -> Path:
    """Fold the adapter at `checkpoint` into its base (the one adapter_config.json names, or
    `base`) and write a plain HF checkpoint with the tokenizer to `out`, loadable without peft."""
    from peft import PeftModel

    ckpt, out = Path(checkpoint), Path(out)
    if not is_adapter(ckpt):
        raise LoraError(
            f"{ckpt}: not a LoRA adapter checkpoint (no {ADAPTER_CONFIG}); a full-weight "
            "checkpoint loads as it is and needs no merge"
        )
    base = base or json.loads((ckpt / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base:
        raise LoraError(f"{ckpt}: {ADAPTER_CONFIG} names no base model; give it with --base")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LoraError(f"--out {out}: exists and is not an empty folder; nothing was written")
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")  # the base's own dtype
        merged = PeftModel.from_pretrained(model, str(ckpt)).merge_and_unload()
    except Exception as exc:  # noqa: BLE001
        raise LoraError(
            f"{ckpt}: could not apply the adapter to its base {base}: {type(exc).__name__}: {exc}"
        ) from exc
    # the run saves its tokenizer beside the adapter; an adapter saved by other tools may not
    has_tokenizer = (ckpt / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(str(ckpt) if has_tokenizer else base)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
