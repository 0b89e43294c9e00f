"""A model's shape (parameters, layers, KV heads, vocabulary) from its `config.json`, with no
weights: what `uniopd plan` sizes memory from.

Where a model's folder is not on this machine, its shape comes from a `config.json` the user
names (`--config student=path/config.json`), or from the shipped copies of the paper's models
(model_configs/: Qwen3-1.7B, Qwen3-4B, Qwen3-30B-A3B-Instruct-2507, as their Hugging Face
repositories publish them), matched by the folder's name (`models/Qwen3-4B-math-expert` is a
Qwen3-4B). The tiny world's `builtin:` models are planned from their recipe sizes.

Parameter counts follow the decoder layout of the Qwen2 / Qwen3 / Llama families (transformers
5.x modeling_qwen3.py, modeling_qwen3_moe.py, modeling_qwen2.py): embeddings, per layer the
q/k/v/o projections (Qwen2: biases on q, k, v; Qwen3: per-head q/k RMSNorm), a gated MLP (or
`num_experts` of them and a router), two RMSNorms; a final norm; an output head unless tied.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from uniopd.setup.plan_images import PlanError

SHIPPED = Path(__file__).resolve().parent / "model_configs"


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What memory depends on. `source`: where the shape was read (printed with the plan)."""

    params: int
    layers: int
    hidden: int
    intermediate: int  # per token through the MLP: the active experts' width for a MoE
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    source: str

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """One cached token: K and V of every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each per-layer projection, by module name (for LoRA's adapter size)."""
        h, q, i = self.hidden, self.heads * self.head_dim, self.intermediate
        kv = self.kv_heads * self.head_dim
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }


def _layer_params(c: dict, h: int, hd: int) -> tuple[int, int]:
    """(parameters of one decoder layer, the MLP width a token passes through)."""
    nh, nkv = c["num_attention_heads"], c.get("num_key_value_heads") or c["num_attention_heads"]
    attn = 2 * h * nh * hd + 2 * h * nkv * hd
    kind = c.get("model_type", "")
    if kind == "qwen2" or c.get("attention_bias"):
        attn += nh * hd + 2 * nkv * hd + (h if c.get("attention_bias") else 0)
    if kind.startswith("qwen3"):
        attn += 2 * hd  # q_norm and k_norm
    experts = c.get("num_experts") or 0
    if experts:
        width = c["moe_intermediate_size"]
        mlp = experts * 3 * h * width + h * experts  # the experts and the router
        active = c.get("num_experts_per_tok", 1) * width
    else:
        mlp = 3 * h * c["intermediate_size"]
        active = c["intermediate_size"]
    return attn + mlp + 2 * h, active


def shape_from_config(c: dict, source: str) -> ModelShape:
    """The shape a config.json's fields give (PlanError naming `source` if a field is missing)."""
    if isinstance(c.get("text_config"), dict):  # an image-text model: its language model
        c = {**c["text_config"], "tie_word_embeddings": c.get("tie_word_embeddings", False)}
    try:
        h, layers, v = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
        hd = c.get("head_dim") or h // c["num_attention_heads"]
        per_layer, active = _layer_params(c, h, hd)
        heads = c["num_attention_heads"]
        kv_heads = c.get("num_key_value_heads") or heads
    except (KeyError, TypeError) as exc:
        raise PlanError(
            f"{source}: not a decoder config.json this plan reads (missing {exc})"
        ) from None
    heads_out = 1 if c.get("tie_word_embeddings", True) else 2  # embeddings (+ an untied head)
    params = heads_out * v * h + layers * per_layer + h
    return ModelShape(params, layers, h, active, heads, kv_heads, hd, v, source)


def read_config(path: Path) -> dict:
    """A config.json as a dict (PlanError naming the file if it is absent or malformed)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanError(f"{path}: no such config.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"{path}: not a readable JSON config.json ({exc})") from None
    if not isinstance(data, dict):
        raise PlanError(f"{path}: a config.json is a JSON object, got {type(data).__name__}")
    return data


def shipped_match(ref: str) -> Path | None:
    """The shipped config.json whose model name starts the folder name of `ref` (the longest
    such name: Qwen3-4B-math-expert is a Qwen3-4B), or None."""
    name = Path(ref.rstrip("/")).name.lower()
    names = sorted((p.name for p in SHIPPED.iterdir() if p.is_dir()), key=len, reverse=True)
    hit = next((n for n in names if name.startswith(n)), None)
    return SHIPPED / hit / "config.json" if hit else None


def model_shape(ref: str, where: str, named: Path | None = None) -> ModelShape:
    """The shape of model `ref` (the field `where` names it): from `named` (a config.json the
    user gave), the model's own folder, a builtin recipe, or a shipped config matched by name."""
    if named is not None:
        return shape_from_config(read_config(named), str(named))
    if ref.startswith("builtin:"):
        from uniopd.world.models import planned_config

        name = ref.removeprefix("builtin:")
        return shape_from_config(planned_config(name).to_dict(), f"{ref} (tiny-world recipe)")
    own = Path(ref) / "config.json"
    if own.is_file():
        return shape_from_config(read_config(own), str(own))
    shipped = shipped_match(ref)
    if shipped is not None:
        return shape_from_config(read_config(shipped), f"shipped {shipped.parent.name}")
    raise PlanError(
        f"{where} = {ref}: no config.json there and no shipped config matches its name; name "
        f"one with --config {where.removeprefix('teachers.')}=path/to/config.json"
    )
