"""Preference objectives on (chosen, rejected) pairs: DPO, Omni-DPO's two weights and its
calibrated NLL, and SENTINEL's context-aware C-DPO (docs/method.md section 9).

Every function takes per-pair sequence log-probs `[P]` (`sequence_logps` makes them from
per-token log-probs and a per-token weight) and returns per-pair values `[P]`; the caller
averages over pairs. Nothing here is detached unless its docstring says so: the loss is
differentiated through every term, as in the released Omni-DPO trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_logps(
    logp_N_T: torch.Tensor, weight_N_T: torch.Tensor, length_norm: bool = False
) -> torch.Tensor:
    """`[N]` sum of the weighted per-token log-probs; with `length_norm` divided by the weight's
    sum (the mean per-token log-prob, Omni-DPO's release default). `weight_N_T` is the response
    mask for DPO and 1 only on the sentence that decides the pair for C-DPO."""
    total = (logp_N_T * weight_N_T).sum(-1)
    return total / weight_N_T.sum(-1).clamp_min(1) if length_norm else total


def implicit_reward_margin(
    chosen_P: torch.Tensor,
    rejected_P: torch.Tensor,
    ref_chosen_P: torch.Tensor,
    ref_rejected_P: torch.Tensor,
) -> torch.Tensor:
    """Delta_r / beta = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))."""
    return (chosen_P - ref_chosen_P) - (rejected_P - ref_rejected_P)


def dpo_loss(
    chosen_P: torch.Tensor,
    rejected_P: torch.Tensor,
    ref_chosen_P: torch.Tensor,
    ref_rejected_P: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO (Rafailov et al. 2023): -log sigmoid(beta * implicit reward margin), per pair."""
    margin = implicit_reward_margin(chosen_P, rejected_P, ref_chosen_P, ref_rejected_P)
    return -F.logsigmoid(beta * margin)


def quality_weight(score_chosen_P: torch.Tensor, score_rejected_P: torch.Tensor, eta: float):
    """Omni-DPO's w_qual = sigmoid(eta * (S_w - S_l)): a clear pair (a wide score margin) counts
    more than an ambiguous one."""
    return torch.sigmoid(eta * (score_chosen_P - score_rejected_P))


def dynamics_weight(
    chosen_P: torch.Tensor,
    rejected_P: torch.Tensor,
    beta: float,
    tau_ref: float,
    gamma: float,
    ref_chosen_P: torch.Tensor | None = None,
    ref_rejected_P: torch.Tensor | None = None,
) -> torch.Tensor:
    """Omni-DPO's w_perf = (1 - sigmoid(beta * margin - tau_ref)) ** gamma, a focal weight: pairs
    the model already separates by more than tau_ref fade out. The release measures the margin
    on the policy alone (log pi(y_w) - log pi(y_l)); given the reference log-probs it is the
    implicit reward margin instead (the reading of the paper's text; a choice, docs/method.md)."""
    margin = chosen_P - rejected_P
    if ref_chosen_P is not None and ref_rejected_P is not None:
        margin = margin - (ref_chosen_P - ref_rejected_P)
    return (1 - torch.sigmoid(beta * margin - tau_ref)) ** gamma


def calibrated_nll(
    chosen_P: torch.Tensor,
    ref_chosen_P: torch.Tensor,
    score_chosen_P: torch.Tensor,
    tau_good: float | None,
) -> torch.Tensor:
    """Omni-DPO's c-NLL, per pair: -log pi(y_w), only where the policy has fallen below the
    reference on y_w (log pi_ref(y_w) > log pi(y_w)) and y_w is good (S_w >= tau_good; None: every
    chosen response counts, as the verifier's pairs' chosen ones are all correct). The gate is
    detached: it says where the term acts, not how."""
    gate = (ref_chosen_P > chosen_P).to(chosen_P.dtype).detach()
    if tau_good is not None:
        gate = gate * (score_chosen_P >= tau_good).to(chosen_P.dtype)
    return -gate * chosen_P


def omni_dpo_loss(
    chosen_P: torch.Tensor,
    rejected_P: torch.Tensor,
    ref_chosen_P: torch.Tensor,
    ref_rejected_P: torch.Tensor,
    score_chosen_P: torch.Tensor,
    score_rejected_P: torch.Tensor,
    *,
    beta: float,
    eta: float | None,
    tau_ref: float,
    gamma: float | None,
    nll_lambda: float,
    tau_good: float | None,
    dynamics_on_policy_margin: bool = True,
) -> torch.Tensor:
    """Omni-DPO per pair: -w_qual * w_perf * log sigmoid(beta * margin) + lambda * c-NLL.
    `eta` None switches the quality weight off (w_qual = 1), `gamma` None the dynamics weight
    (w_perf = 1), `nll_lambda` 0 the c-NLL term; all three off is DPO exactly."""
    loss = dpo_loss(chosen_P, rejected_P, ref_chosen_P, ref_rejected_P, beta)
    if eta is not None:
        loss = quality_weight(score_chosen_P, score_rejected_P, eta) * loss
    if gamma is not None:
        refs = (None, None) if dynamics_on_policy_margin else (ref_chosen_P, ref_rejected_P)
        loss = dynamics_weight(chosen_P, rejected_P, beta, tau_ref, gamma, *refs) * loss
    if nll_lambda > 0:
        loss = loss + nll_lambda * calibrated_nll(chosen_P, ref_chosen_P, score_chosen_P, tau_good)
    return loss


def cdpo_loss(
    logp_N_T: torch.Tensor,
    ref_logp_N_T: torch.Tensor,
    sentence_weight_N_T: torch.Tensor,
    chosen_P: torch.Tensor,
    rejected_P: torch.Tensor,
    beta: float,
    length_norm: bool = False,
) -> torch.Tensor:
    """SENTINEL's C-DPO per pair. Rows `chosen_P` and `rejected_P` of the batch share a prompt and
    a non-hallucinated context and differ from the next sentence on (the faithful one vs the one
    where the hallucination starts); `sentence_weight_N_T` is 1 on that sentence's tokens, so the
    preference is learnt where the hallucination begins, conditioned on the context. A
    one-sentence response (no context) is weighted whole: C-DPO is then DPO."""
    seq = sequence_logps(logp_N_T, sentence_weight_N_T, length_norm)
    ref = sequence_logps(ref_logp_N_T, sentence_weight_N_T, length_norm)
    return dpo_loss(seq[chosen_P], seq[rejected_P], ref[chosen_P], ref[rejected_P], beta)
