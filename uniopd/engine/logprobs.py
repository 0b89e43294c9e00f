"""Per-token log-probs (and entropy, top-K, logits) of the response tokens under a causal LM.

The sampled tokens' log-probs never materialise the float32 `[N, T, V]` matrix: the model runs up
to its final hidden states, and the output head and the log-softmax run over chunks of
`chunk_tokens` response tokens (padding skipped). With gradients, each chunk is recomputed in the
backward pass (activation checkpointing), so a 16k-token row over a 151k vocabulary holds one
chunk's logits at a time instead of ~10 GB. Only objectives that need the full distribution
(JSD, forward KL, top-K matching) ask for `response_logits`.
"""

from __future__ import annotations

import logging

import torch
from torch.utils.checkpoint import checkpoint

from uniopd.engine.sequences import SequenceBatch
from uniopd.engine.vision import model_inputs, uses_multimodal_rope

log = logging.getLogger(__name__)

CHUNK_TOKENS = 512  # response tokens per head + log-softmax chunk: 0.3 GB of fp32 at V = 151k
# Logits up to this size are cheaper kept than recomputed: one chunk, no recompute in backward
# (the tiny world's 10k tokens x 512 vocabulary: 20 MB; its update ran 99 chunks and recomputed
# each, ~30% of the update's time)
KEEP_LOGITS_BYTES = 64 << 20


def _forward(model, batch: SequenceBatch, **kwargs):
    attn = batch.attention_mask_N_L
    if batch.vision is not None:  # a multimodal batch: each row's pixel inputs, in row order
        kwargs.update(model_inputs(model, batch.input_ids_N_L, batch.vision))
    if not (batch.vision is not None and uses_multimodal_rope(model)):
        # position ids from the mask, so left padding does not shift positions: a prompt scores
        # the same whatever batch it is in (the Qwen-VL family derives its own from the mask)
        kwargs["position_ids"] = (attn.cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=batch.input_ids_N_L, attention_mask=attn, use_cache=False, **kwargs)


def response_logits(model, batch: SequenceBatch) -> torch.Tensor:
    """Next-token logits at every response column, `[N, T, V]` float32 (padding columns hold
    garbage; callers mask them). For objectives that need the whole distribution."""
    logits = _forward(model, batch).logits
    # the logit at column j predicts token j + 1: the response starts at prompt_width
    return logits[:, batch.prompt_width - 1 : -1].float()


class HeadMismatchError(RuntimeError):
    """The output head applied to the last hidden state does not give the model's logits."""


def _last_hidden_and_output(model, batch: SequenceBatch):
    """(the decoder's last hidden state `[N, L, H]`, the model's output with one position's
    logits). The hidden state is read by a forward hook on the decoder (`get_decoder()`, the base
    model under the output head): `output_hidden_states=True` would keep every layer's hidden
    state until the forward ends (37 of them for Qwen3-4B, ~12 GB at 32k tokens), which a pass
    without gradients would otherwise free layer by layer. transformers 5.25's decoders return
    a `BaseModelOutputWithPast` whose `last_hidden_state` is what `hidden_states[-1]` gave
    (after the final norm: `capture_outputs(tie_last_hidden_states=True)`)."""
    kept: list[torch.Tensor] = []

    def keep(module, inputs, output) -> None:
        kept[:] = [output[0] if isinstance(output, tuple) else output.last_hidden_state]

    handle = model.get_decoder().register_forward_hook(keep)
    try:
        out = _forward(model, batch, logits_to_keep=1)
    finally:
        handle.remove()
    return kept[0], out


def response_hidden(model, batch: SequenceBatch) -> tuple[torch.Tensor, torch.nn.Module]:
    """Final hidden states at every response column `[N, T, H]` and the output head.

    The forward goes through the model itself (so wrappers such as LoRA, DDP or FSDP and autocast
    apply) with `logits_to_keep=1`: the head runs on one position only. That one position's logits
    check that head(hidden) is the model's logits; an architecture that scales or soft-caps its
    logits after the head fails the check instead of giving wrong log-probs.
    """
    hidden, out = _last_hidden_and_output(model, batch)
    head = model.get_output_embeddings()
    with torch.no_grad():
        mine = head(hidden[:, -1:]).float()
        theirs = out.logits[:, -1:].float()
        if not torch.allclose(
            mine, theirs, rtol=1e-3, atol=1e-3 * float(theirs.abs().max()) + 1e-5
        ):
            raise HeadMismatchError(
                f"{type(model).__name__}: output head on the last hidden state differs from the "
                "model's logits (logit scaling or soft-capping?)"
            )
    return hidden[:, batch.prompt_width - 1 : -1], head


def _chunk_logprobs(head, hidden_n_H, ids_n, k: int, with_entropy: bool):
    logits = head(hidden_n_H).float()
    lse = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, ids_n[:, None]).squeeze(-1) - lse
    with torch.no_grad():  # metrics and teacher signals: no graph, one [n, V] temporary at most
        flat = logits.detach()
        entropy = lse.new_zeros(lse.shape)
        if with_entropy:  # H = lse - sum_v p_v * logit_v
            entropy = lse - (flat - lse[:, None]).exp_().mul_(flat).sum(-1)
        # not views of `flat`: a view, even an empty one, would keep the chunk's logits alive
        top_logp = lse.new_zeros((lse.shape[0], 0))
        top_ids = ids_n.new_zeros((lse.shape[0], 0))
        if k:
            top, top_ids = flat.topk(k, dim=-1)
            top_logp = top - lse[:, None]
    return logp, entropy, top_logp, top_ids


def token_logprobs(
    hidden_N_T_H: torch.Tensor,
    head: torch.nn.Module,
    ids_N_T: torch.Tensor,
    mask_N_T: torch.Tensor,
    chunk_tokens: int = CHUNK_TOKENS,
    topk: int = 0,
    with_entropy: bool = False,
    recompute: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(log p of each token `[N, T]`, entropy `[N, T]` (no grad; zeros unless `with_entropy`),
    top-K log-probs and ids `[N, T, K]` or None) over the real tokens of `mask_N_T`, in chunks;
    0 on padding. `recompute`: with gradients, keep each chunk's input only and recompute its
    logits in backward."""
    n, t = ids_N_T.shape
    where = mask_N_T.bool()
    hidden, ids = hidden_N_T_H[where], ids_N_T[where]
    grad = torch.is_grad_enabled() and hidden.requires_grad and recompute
    parts = []
    for s in range(0, hidden.shape[0], chunk_tokens):
        h, i = hidden[s : s + chunk_tokens], ids[s : s + chunk_tokens]
        if grad:  # keep only the chunk's input; its logits are recomputed in the backward pass
            parts.append(
                checkpoint(_chunk_logprobs, head, h, i, topk, with_entropy, use_reentrant=False)
            )
        else:
            parts.append(_chunk_logprobs(head, h, i, topk, with_entropy))
    device = hidden_N_T_H.device
    logp = torch.zeros((n, t), device=device)
    entropy = torch.zeros((n, t), device=device)
    if parts:
        logp = logp.masked_scatter(where, torch.cat([p[0] for p in parts]))
        entropy[where] = torch.cat([p[1] for p in parts])
    if not topk:
        return logp, entropy, None, None
    top_logp = torch.zeros((n, t, topk), device=device)
    top_ids = torch.zeros((n, t, topk), dtype=torch.long, device=device)
    if parts:
        top_logp[where] = torch.cat([p[2] for p in parts])
        top_ids[where] = torch.cat([p[3] for p in parts])
    return logp, entropy, top_logp, top_ids


def _vocab(head: torch.nn.Module) -> int:
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if weight is not None else 1 << 30  # unknown: assume large


def sampled_logprobs(logits_N_T_V: torch.Tensor, ids_N_T: torch.Tensor, with_entropy: bool = False):
    """log p of each sampled token `[N, T]` from full logits (and the entropy `[N, T]`, no grad)."""
    logp_N_T_V = torch.log_softmax(logits_N_T_V, dim=-1)
    logp_N_T = logp_N_T_V.gather(-1, ids_N_T.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return logp_N_T
    with torch.no_grad():
        entropy_N_T = -(logp_N_T_V.exp() * logp_N_T_V).sum(-1)
    return logp_N_T, entropy_N_T


def response_logprobs(
    model, batch: SequenceBatch, with_entropy: bool = False, chunk_tokens: int = CHUNK_TOKENS
):
    """log p(o_t | q, o_<t) for every response token, `[N, T]` float32, 0 on padding (and the
    entropy `[N, T]`), without the full-vocabulary matrix."""
    hidden, head = response_hidden(model, batch)
    mask = batch.response_mask_N_T
    chunk_tokens, recompute = _chunking(chunk_tokens, head, mask)
    logp, entropy, _, _ = token_logprobs(
        hidden,
        head,
        batch.response_ids_N_T,
        mask,
        chunk_tokens,
        with_entropy=with_entropy,
        recompute=recompute,
    )
    return (logp, entropy) if with_entropy else logp


def _chunking(chunk_tokens: int, head: torch.nn.Module, mask_N_T: torch.Tensor):
    """(chunk size, recompute): logits of every response token that fit KEEP_LOGITS_BYTES go in
    one chunk, kept for backward; larger ones in chunks of `chunk_tokens`, recomputed."""
    tokens = int(mask_N_T.sum())
    if tokens * _vocab(head) * 4 <= KEEP_LOGITS_BYTES:
        return max(chunk_tokens, tokens, 1), False
    return chunk_tokens, True


def response_topk(model, batch: SequenceBatch, k: int, chunk_tokens: int = CHUNK_TOKENS):
    """The model's K most likely tokens at every response position: (log-probs over the full
    vocabulary `[N, T, K]`, ids `[N, T, K]`), chunked like `response_logprobs`."""
    hidden, head = response_hidden(model, batch)
    mask = batch.response_mask_N_T
    _, _, top_logp, top_ids = token_logprobs(
        hidden, head, batch.response_ids_N_T, mask, chunk_tokens, k
    )
    assert top_logp is not None and top_ids is not None
    return top_logp, top_ids
