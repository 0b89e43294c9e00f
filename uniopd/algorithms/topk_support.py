"""Top-K local support matching ("Revisiting On-Policy Distillation").

The sampled-token OPD advantage is a one-sample estimate of the reverse KL and so is noisy, while
the full-vocabulary reverse KL needs the teacher's whole distribution at every position (V floats
per token over the wire). The middle road: at each position take the teacher's top-K tokens S_t
(plus the token actually sampled, if the teacher did not rank it, so the rollout's own token
always gets a signal), renormalise student and teacher over S_t, and minimise the reverse KL of
those local distributions. Clamping the per-token log-ratio to +-clamp keeps one token the
teacher all but rules out from dominating the loss; with clamp c the loss lies in [-c, c].

Shapes: student logits `[N, T, V]`, teacher top-K `[N, T, K]`, loss and masks `[N, T]`.
"""

from __future__ import annotations

import torch


def teacher_topk(teacher_logits_N_T_V: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs `[N, T, K]`, token ids `[N, T, K]`) of the teacher's K most likely tokens.

    The log-probs are over the full vocabulary (log_softmax before topk), which is what the loss
    expects: it renormalises over the support itself, after the sampled token may have joined.
    """
    return torch.log_softmax(teacher_logits_N_T_V, dim=-1).topk(k, dim=-1)


def topk_support_loss(
    student_logits_N_T_V: torch.Tensor,
    teacher_topk_logp_N_T_K: torch.Tensor,
    teacher_topk_ids_N_T_K: torch.Tensor,
    *,
    sampled_ids_N_T: torch.Tensor | None = None,
    teacher_sampled_logp_N_T: torch.Tensor | None = None,
    clamp: float | None = 5.0,
) -> torch.Tensor:
    """sum_{v in S_t} p̄θ(v) * clamp(log p̄θ(v) - log q̄T(v), -clamp, clamp) per token, `[N, T]`.

    p̄θ, q̄T are the student and teacher renormalised over S_t. With sampled ids, S_t gains the
    sampled token where it is not among the top K, with `teacher_sampled_logp_N_T` (full-vocab
    teacher log-prob of that token) as its teacher value. clamp=None: no clamp, and with K = V
    this is the full reverse KL(pS || pT). Gradients reach the student logits only.
    """
    ids = teacher_topk_ids_N_T_K
    logq = teacher_topk_logp_N_T_K.detach()
    in_support = torch.ones_like(ids, dtype=torch.bool)
    if sampled_ids_N_T is not None:
        if teacher_sampled_logp_N_T is None:
            raise ValueError("sampled_ids_N_T needs teacher_sampled_logp_N_T")
        sampled = sampled_ids_N_T[..., None]
        # an extra slot per position, live only where the sampled token is not already in S_t
        extra = ~(ids == sampled).any(-1, keepdim=True)
        ids = torch.cat([ids, sampled], dim=-1)
        logq = torch.cat([logq, teacher_sampled_logp_N_T.detach()[..., None].to(logq.dtype)], -1)
        in_support = torch.cat([in_support, extra], dim=-1)
    neg_inf = torch.tensor(float("-inf"), dtype=logq.dtype, device=logq.device)
    logp = torch.log_softmax(student_logits_N_T_V, dim=-1).gather(-1, ids)
    logp = torch.where(in_support, logp, neg_inf.to(logp.dtype))
    logq = torch.where(in_support, logq, neg_inf)
    # renormalise over S_t: subtracting the support's log-mass turns full-vocab log-probs local
    logp_bar = logp - logp.logsumexp(-1, keepdim=True)
    logq_bar = logq - logq.logsumexp(-1, keepdim=True)
    # dead slots: zero the ratio before the product so no -inf - -inf = nan reaches backward
    ratio = torch.where(in_support, logp_bar - logq_bar, torch.zeros_like(logp_bar))
    if clamp is not None:
        ratio = ratio.clamp(-clamp, clamp)
    return (logp_bar.exp() * ratio).sum(-1)


def first_occurrence_special_mask(
    response_ids_N_T: torch.Tensor, special_ids: list[int], mask_N_T: torch.Tensor
) -> torch.Tensor:
    """`mask_N_T` with the first in-mask position holding any of `special_ids` zeroed, per row.

    The paper drops that one position from the loss: at the first special token (a think
    delimiter, say) a teacher whose tokenizer or template treats it differently gives a log-prob
    that measures the format mismatch, not the reasoning. Only positions inside the mask are
    searched (a choice made here, not the paper's wording), so
    padding that happens to reuse a special id is never mistaken for the first occurrence; later
    occurrences stay in the loss. Rows without a special token come back unchanged.
    """
    ids = response_ids_N_T
    special = torch.tensor(special_ids, dtype=ids.dtype, device=ids.device)
    hit = torch.isin(ids, special) & (mask_N_T > 0)
    # cumsum counts hits so far; the first occurrence is the hit where that count reaches 1
    first = hit & (hit.long().cumsum(-1) == 1)
    return mask_N_T * (~first).to(mask_N_T.dtype)
