"""How rollouts are sampled, resolved once per run: `SamplingSettings`.

Every field reaches the rollout engine explicitly, so no library default slips in (transformers
fills an unset `top_k` with 50). Unset experiment fields take the checkpoint's
`generation_config.json` value, else the neutral one: temperature 1, top_p 1, top_k 0 (off).
A response stops at any stop token (kept, part of the response) or after `max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

NEUTRAL = {"temperature": 1.0, "top_p": 1.0, "top_k": 0}


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int
    stop_token_ids: tuple[int, ...]
    pad_token_id: int
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # 1 = off
    top_k: int = 0  # 0 = off
    # never sampled: an image-text student's image tokens (a text teacher has no embedding for
    # them, and a response holding one would be read as a picture)
    banned_token_ids: tuple[int, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def plain(self) -> bool:
        """Sampling from the model's raw distribution: no temperature, top-k or top-p."""
        return self.temperature == 1.0 and self.top_p == 1.0 and self.top_k == 0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["stop_token_ids"] = list(self.stop_token_ids)
        out["banned_token_ids"] = list(self.banned_token_ids)
        if not self.banned_token_ids:  # a text student's settings read as they always did
            del out["banned_token_ids"]
        return out


def _ids(value) -> list[int]:
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def checkpoint_defaults(model) -> dict:
    """The sampling values the checkpoint's generation_config.json sets (transformers loads it as
    `model.generation_config`): temperature / top_p / top_k when set, and its eos_token_id."""
    gen = getattr(model, "generation_config", None)
    if gen is None:
        return {}
    out = {k: getattr(gen, k, None) for k in NEUTRAL}
    out = {k: v for k, v in out.items() if v is not None}
    out["eos_token_id"] = _ids(getattr(gen, "eos_token_id", None))
    return out


def resolve_sampling(
    tokenizer,
    model,
    *,
    max_new_tokens: int,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    stop_token_ids: Iterable[int] = (),
    banned_token_ids: Iterable[int] = (),
) -> SamplingSettings:
    """Settings from explicit values (None = the checkpoint's, else neutral). Stop tokens: the
    tokenizer's EOS, the checkpoint generation config's eos_token_id(s) and `stop_token_ids`."""
    ckpt = checkpoint_defaults(model)
    given = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
    values = {k: given[k] if given[k] is not None else ckpt.get(k, NEUTRAL[k]) for k in NEUTRAL}
    stops = [*_ids(tokenizer.eos_token_id), *ckpt.get("eos_token_id", []), *stop_token_ids]
    pad = tokenizer.pad_token_id
    if pad is None:
        if not stops:
            raise ValueError("the tokenizer has neither a pad nor an EOS token")
        pad = stops[0]
    return SamplingSettings(
        max_new_tokens=max_new_tokens,
        stop_token_ids=tuple(dict.fromkeys(stops)),
        pad_token_id=int(pad),
        temperature=float(values["temperature"]),
        top_p=float(values["top_p"]),
        top_k=int(values["top_k"]),
        banned_token_ids=tuple(banned_token_ids),
    )
