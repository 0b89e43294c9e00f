"""The generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024), per token.

One knob, beta, slides the full-vocabulary distillation loss between the mode-covering forward
KL(pT || pS) (beta = 0, what supervised KD minimises) and the mode-seeking reverse KL(pS || pT)
(beta = 1, what on-policy distillation's sampled-token advantage estimates). In between it is
    M = beta * pT + (1 - beta) * pS,   JSD_beta = beta * KL(pT || M) + (1 - beta) * KL(pS || M).
This follows TRL's `GKDTrainer.generalized_jsd_loss` value for value, including its endpoints:
JSD_beta itself tends to 0 as beta -> 0 or 1, so the endpoints are defined as the two KLs rather
than as the limit (the function is therefore discontinuous at beta = 0 and beta = 1, by design).

Shapes: logits `[N, T, V]` in, per-token divergence `[N, T]` out, unreduced: the caller applies
the response mask and averages, as with every other objective here.
"""

from __future__ import annotations

import math

import torch


def _kl(logp_N_T_V: torch.Tensor, logq_N_T_V: torch.Tensor) -> torch.Tensor:
    """KL(p || q) summed over the vocabulary, `[N, T]`; 0 log 0 = 0.

    Entries with p = 0 (a vocabulary slot masked to -inf logits) contribute exactly 0. The
    difference is zeroed before the product, not after, so no 0 * inf reaches the backward pass.
    """
    p = logp_N_T_V.exp()
    diff = torch.where(p > 0, logp_N_T_V - logq_N_T_V, torch.zeros_like(p))
    return (p * diff).sum(-1)


def generalized_jsd(
    student_logits_N_T_V: torch.Tensor,
    teacher_logits_N_T_V: torch.Tensor,
    beta: float,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-token generalised JSD between the student and teacher next-token distributions, `[N, T]`.

    beta = 0 is exactly KL(pT || pS), beta = 1 exactly KL(pS || pT); both are handled as explicit
    cases (as TRL does) since the mixture formula degenerates to 0 there. Both distributions are
    softmax(logits / temperature), TRL's scaling, with no temperature**2 factor. The mixture is
    formed in log space with logsumexp so a token both models find unlikely does not underflow.
    Gradients flow to the student only: the teacher is a fixed target, so its logits are detached
    (an accidentally attached teacher would otherwise be pulled toward the student).
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    logp_s = torch.log_softmax(student_logits_N_T_V / temperature, dim=-1)
    logp_t = torch.log_softmax(teacher_logits_N_T_V.detach() / temperature, dim=-1)
    if beta == 0.0:
        return _kl(logp_t, logp_s)
    if beta == 1.0:
        return _kl(logp_s, logp_t)
    # log M = log(beta * pT + (1 - beta) * pS); log1p keeps 1 - beta accurate for small beta
    log_m = torch.logsumexp(
        torch.stack([logp_t + math.log(beta), logp_s + math.log1p(-beta)]), dim=0
    )
    return beta * _kl(logp_t, log_m) + (1.0 - beta) * _kl(logp_s, log_m)
