"""Per-token log-probs (and entropy, and logits) of the response tokens under a causal LM."""

from __future__ import annotations

import torch

from uniopd.engine.sequences import SequenceBatch


def response_logits(model, batch: SequenceBatch) -> torch.Tensor:
    """Next-token logits at every response column, `[N, T, V]` float32.

    Position ids come from the attention mask, so left padding does not shift positions: a prompt
    scores the same whatever batch it is in. Padding columns hold garbage; callers mask them.
    """
    attn = batch.attention_mask_N_L
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=batch.input_ids_N_L,
        attention_mask=attn,
        position_ids=position_ids,
        use_cache=False,
    ).logits
    # the logit at column j predicts token j + 1: the response starts at prompt_width
    return logits[:, batch.prompt_width - 1 : -1].float()


def sampled_logprobs(logits_N_T_V: torch.Tensor, ids_N_T: torch.Tensor, with_entropy: bool = False):
    """log p of each sampled token `[N, T]` from logits (and the entropy `[N, T]`, no grad)."""
    logp_N_T_V = torch.log_softmax(logits_N_T_V, dim=-1)
    logp_N_T = logp_N_T_V.gather(-1, ids_N_T.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return logp_N_T
    with torch.no_grad():
        entropy_N_T = -(logp_N_T_V.exp() * logp_N_T_V).sum(-1)
    return logp_N_T, entropy_N_T


def response_logprobs(model, batch: SequenceBatch, with_entropy: bool = False):
    """log p(o_t | q, o_<t) for every response column, `[N, T]` float32 (and entropy `[N, T]`)."""
    return sampled_logprobs(response_logits(model, batch), batch.response_ids_N_T, with_entropy)
