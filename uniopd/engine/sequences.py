"""One tensor layout for every batch of (prompt, response) pairs.

Prompts are left-padded to a common width P and responses right-padded to a common width T, so
`input_ids_N_L` is `[prompt | response]` with L = P + T, and the response of every row starts at
column P. Sampling, the student and the teachers all read this layout, which is why the teacher's
log-probs line up with exactly the student's response tokens.

A multimodal batch also carries each row's pixel inputs (`vision`, uniopd.engine.vision): they
follow their row through `rows`, `trimmed` and `to`, and go into every forward pass over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class SequenceBatch:
    input_ids_N_L: torch.Tensor
    attention_mask_N_L: torch.Tensor
    response_mask_N_T: torch.Tensor  # 1 on real response tokens (the EOS included), 0 on padding
    prompt_width: int
    vision: list | None = None  # per row: its pixel inputs (dict of tensors) or None

    @property
    def response_ids_N_T(self) -> torch.Tensor:
        return self.input_ids_N_L[:, self.prompt_width :]

    def to(self, device) -> SequenceBatch:
        return SequenceBatch(
            self.input_ids_N_L.to(device),
            self.attention_mask_N_L.to(device),
            self.response_mask_N_T.to(device),
            self.prompt_width,
            rows_to(self.vision, device),
        )

    def rows(self, index) -> SequenceBatch:
        vision = None
        if self.vision is not None:
            picked = torch.arange(len(self.vision))[torch.as_tensor(index).cpu()]
            vision = [self.vision[i] for i in picked.reshape(-1).tolist()]
        return SequenceBatch(
            self.input_ids_N_L[index],
            self.attention_mask_N_L[index],
            self.response_mask_N_T[index],
            self.prompt_width,
            vision,
        )

    @property
    def lengths_N(self) -> torch.Tensor:
        """Real tokens per row, prompt and response."""
        return self.attention_mask_N_L.sum(-1)

    def trimmed(self) -> SequenceBatch:
        """The same rows without the padding columns every row has (a micro-batch of short rows
        out of a batch with long ones): the response keeps its first `width` columns."""
        p = self.prompt_width
        prompt = int(self.attention_mask_N_L[:, :p].sum(-1).max()) if p else 0
        width = max(1, int(self.response_mask_N_T.sum(-1).max()))
        cols = slice(p - prompt, p + width)
        return SequenceBatch(
            self.input_ids_N_L[:, cols],
            self.attention_mask_N_L[:, cols],
            self.response_mask_N_T[:, :width],
            prompt,
            self.vision,
        )


def rows_to(vision: list | None, device) -> list | None:
    """Each row's pixel inputs on `device`."""
    if vision is None:
        return None
    return [None if v is None else {k: t.to(device) for k, t in v.items()} for v in vision]


def encode_prompts(tokenizer, prompts: Sequence[str], template: str = "chat") -> list[list[int]]:
    """Token ids of each prompt, through the tokenizer's chat template unless template == 'raw'."""
    if template == "chat":
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
    else:
        texts = list(prompts)
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def pack(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    pad_id: int,
    vision: Sequence | None = None,
) -> SequenceBatch:
    """Lay out pairs of token lists as [left-padded prompt | right-padded response]; `vision`:
    each row's pixel inputs, for a multimodal model."""
    width_p = max(len(p) for p in prompt_ids)
    width_t = max(1, max(len(r) for r in response_ids))
    n = len(prompt_ids)
    ids = torch.full((n, width_p + width_t), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width_p + width_t), dtype=torch.long)
    resp = torch.zeros((n, width_t), dtype=torch.float32)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        ids[i, width_p - len(p) : width_p] = torch.tensor(p, dtype=torch.long)
        attn[i, width_p - len(p) : width_p] = 1
        if len(r):
            ids[i, width_p : width_p + len(r)] = torch.tensor(r, dtype=torch.long)
            attn[i, width_p : width_p + len(r)] = 1
            resp[i, : len(r)] = 1.0
    rows = None if vision is None else list(vision)
    has_images = rows is not None and any(v is not None for v in rows)
    return SequenceBatch(ids, attn, resp, width_p, rows if has_images else None)


def with_prompts(
    batch: SequenceBatch,
    prompt_ids: Sequence[Sequence[int]],
    pad_id: int,
    vision: Sequence | None = None,
) -> SequenceBatch:
    """The same response columns behind other prompts (one per row): a teacher that sees a
    different prompt (a reference solution in context, or the text rendering of the student's
    image) scores exactly the student's tokens. The new prompts come with their own pixel inputs
    (`vision`), or none."""
    n = batch.input_ids_N_L.shape[0]
    width_p = max(len(p) for p in prompt_ids)
    ids = torch.full((n, width_p), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width_p), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, width_p - len(p) :] = torch.tensor(p, dtype=torch.long)
        attn[i, width_p - len(p) :] = 1
    device = batch.input_ids_N_L.device
    tail = slice(batch.prompt_width, None)
    return SequenceBatch(
        torch.cat([ids.to(device), batch.input_ids_N_L[:, tail]], 1),
        torch.cat([attn.to(device), batch.attention_mask_N_L[:, tail]], 1),
        batch.response_mask_N_T,
        width_p,
        list(vision) if vision is not None else None,
    )
