"""Sampling rollouts with HF `generate`: G responses per prompt, laid out as a SequenceBatch.

On a GPU with the `gpu` extra a vLLM engine can replace this; everything downstream only sees
token ids, so the swap does not touch the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import GenerationConfig

from uniopd.engine.fsdp import is_sharded
from uniopd.engine.sequences import SequenceBatch, pack


def generation_config(
    tokenizer, *, temperature: float, top_p: float, top_k: int, max_new_tokens: int
) -> GenerationConfig:
    sample = temperature > 0
    return GenerationConfig(
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=top_p if sample else None,
        top_k=(top_k if top_k > 0 else None) if sample else None,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@torch.no_grad()
def sample_responses(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    gen: GenerationConfig,
    max_batch: int = 256,
) -> list[list[int]]:
    """One sampled response per prompt row: token ids up to and including EOS when produced."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[list[int]] = []
    for start in range(0, len(prompt_ids), max_batch):
        chunk = prompt_ids[start : start + max_batch]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, p in enumerate(chunk):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attn[i, width - len(p) :] = 1
        generated = model.generate(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            generation_config=gen,
            # a sharded model's every forward is a collective: all processes step until all end
            synced_gpus=is_sharded(model),
        )
        for row in generated[:, width:].tolist():
            if gen.eos_token_id in row:
                row = row[: row.index(gen.eos_token_id) + 1]
            else:  # no EOS: strip the padding generate appends to finished rows of the batch
                while row and row[-1] == gen.pad_token_id:
                    row.pop()
            out.append(row)
    model.train(was_training)
    return out


def rollout_batch(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    group_size: int,
    gen: GenerationConfig,
    max_batch: int = 256,
) -> SequenceBatch:
    """G samples of each prompt, rows ordered prompt-major: rows i*G .. i*G+G-1 share prompt i."""
    repeated = [p for p in prompt_ids for _ in range(group_size)]
    responses = sample_responses(model, tokenizer, repeated, gen, max_batch)
    return pack(repeated, responses, tokenizer.pad_token_id)
