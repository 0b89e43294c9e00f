"""The policy update on one rollout batch (METHOD 2 and 5), one path for every method.

1. pi_old: a no-grad pass over the batch gives the sampled tokens' log-probs.
2. Advantages, once for the whole batch: the weighted sum of the advantage objectives; the
   distillation part margin-calibrated when asked (calibration needs whole groups).
3. For each PPO epoch and micro-batch: the PPO-clip surrogate on the advantages plus the weighted
   direct losses (full-vocabulary or top-K divergences) on the current logits; gradients
   accumulate, one optimizer step per epoch.

The teacher's full logits, when an objective needs them, are computed per micro-batch inside
step 3 and dropped after it, so they never exist for the whole batch at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from uniopd.algorithms import ppo_clip_loss, rollout_mean_loss
from uniopd.engine.logprobs import response_logits, response_logprobs, sampled_logprobs
from uniopd.engine.sequences import SequenceBatch
from uniopd.objectives import Need, Signals
from uniopd.scoring import TeacherSignals


@dataclass
class Advantages:
    """Whole-batch advantages `[N, T]` and what the order metrics and pairs.jsonl read."""

    values_N_T: torch.Tensor
    mask_N_T: torch.Tensor  # loss mask of the advantage terms, balancing included
    distill_raw_N_T: torch.Tensor | None = None  # the weighted distillation term before calibration
    distill_cal_N_T: torch.Tensor | None = None  # ... and after
    distill_mask_N_T: torch.Tensor | None = None
    calibration: dict = field(default_factory=dict)
    calibrate_seconds: float = 0.0


@dataclass
class UpdateResult:
    loss: float
    entropy: float  # mean over response tokens, first epoch
    clip_frac: float
    gap_masked_frac: float
    grad_norm: float
    old_logp_N_T: torch.Tensor
    advantages: Advantages
    direct_losses: dict[str, float] = field(default_factory=dict)  # per loss objective, first epoch


def batch_signals(
    rows: torch.Tensor,
    batch: SequenceBatch,
    old_logp_N_T: torch.Tensor,
    rewards_N: torch.Tensor,
    group_ids_N: torch.Tensor,
    scored: TeacherSignals,
) -> Signals:
    """The signals of `rows`: everything per row sliced, rewards and groups whole."""

    def take(value: torch.Tensor | None) -> torch.Tensor | None:
        return None if value is None else value[rows]

    return Signals(
        rows=rows,
        mask_N_T=batch.response_mask_N_T[rows],
        student_logp_N_T=old_logp_N_T[rows],
        response_ids_N_T=batch.response_ids_N_T[rows],
        rewards_N=rewards_N,
        group_ids_N=group_ids_N,
        teacher_logp_N_T=take(scored.teacher_logp_N_T),
        teacher_topk_logp_N_T_K=take(scored.teacher_topk_logp_N_T_K),
        teacher_topk_ids_N_T_K=take(scored.teacher_topk_ids_N_T_K),
        reference_logp_N_T=take(scored.reference_logp_N_T),
        special_token_ids=scored.special_token_ids,
    )


def compute_advantages(
    objectives: list,
    signals: Signals,
    keep_N: torch.Tensor,
    calibrator,
    calibration_correct_N: torch.Tensor,
) -> Advantages:
    """Sum of coef * advantage over the advantage objectives; the distillation part calibrated."""
    mask = signals.mask_N_T
    distill, distill_mask, other, loss_mask = None, None, torch.zeros_like(mask), mask
    for _, coef, objective in objectives:
        if objective.kind != "advantage":
            continue
        a, m = objective.advantages(signals)
        loss_mask = loss_mask * m
        if objective.distills:
            distill = coef * a if distill is None else distill + coef * a
            distill_mask = m if distill_mask is None else distill_mask * m
        else:
            other = other + coef * a
    out = Advantages(other, loss_mask)
    if distill is not None:
        out.distill_raw_N_T = out.distill_cal_N_T = distill
        out.distill_mask_N_T = distill_mask
        if calibrator is not None:
            start = time.perf_counter()
            cal = calibrator.calibrate(
                distill, distill_mask, calibration_correct_N, signals.group_ids_N
            )
            out.calibrate_seconds = time.perf_counter() - start
            out.distill_cal_N_T, out.calibration = cal.advantages_N_T, cal.metrics
        out.values_N_T = out.values_N_T + out.distill_cal_N_T
    # balanced-out rollouts: loss mask 0, slot in N kept
    out.mask_N_T = loss_mask * keep_N.to(mask.dtype)[:, None]
    out.values_N_T = out.values_N_T * out.mask_N_T
    return out


def policy_update(
    student,
    optimizer,
    batch: SequenceBatch,
    objectives: list,
    scored: TeacherSignals,
    rewards_N: torch.Tensor,
    group_ids_N: torch.Tensor,
    keep_N: torch.Tensor,
    calibrator,
    calibration_correct_N: torch.Tensor,
    train_cfg,
    teacher_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> UpdateResult:
    """`scored`: the teacher phase's signals (whole batch); `teacher_logits(rows)`: the full
    teacher logits of a micro-batch, when an objective needs them."""
    N = batch.input_ids_N_L.shape[0]
    mb = train_cfg.micro_batch_size or N
    full_logits = any(Need.TEACHER_LOGITS in o.needs() for _, _, o in objectives)
    if full_logits:
        mb = min(mb, train_cfg.logits_micro_batch_size)  # bounds the teacher's [n, T, V] logits
    chunks = [
        torch.arange(s, min(s + mb, N), device=batch.input_ids_N_L.device) for s in range(0, N, mb)
    ]
    with torch.no_grad():
        old_logp = torch.cat([response_logprobs(student, batch.rows(c)) for c in chunks])
    everything = torch.arange(N, device=old_logp.device)
    adv = compute_advantages(
        objectives,
        batch_signals(everything, batch, old_logp, rewards_N, group_ids_N, scored),
        keep_N,
        calibrator,
        calibration_correct_N,
    )
    has_advantage = any(o.kind == "advantage" for _, _, o in objectives)
    direct = [(name, coef, o) for name, coef, o in objectives if o.kind == "loss"]
    teacher_logp = scored.teacher_logp_N_T
    keep_f = keep_N.to(old_logp.dtype)

    totals = {"loss": 0.0, "entropy": 0.0, "clip_frac": 0.0, "gap_masked_frac": 0.0}
    direct_losses = {name: 0.0 for name, _, _ in direct}
    grad_norm = 0.0
    for epoch in range(train_cfg.epochs):
        for c in chunks:
            sub = batch.rows(c)
            logits = response_logits(student, sub)
            logp, entropy = sampled_logprobs(logits, sub.response_ids_N_T, with_entropy=True)
            loss = torch.zeros((), device=logp.device)
            st = {"clip_frac": 0.0, "gap_masked_frac": 0.0}
            if has_advantage:
                loss, st = ppo_clip_loss(
                    logp,
                    old_logp[c],
                    adv.values_N_T[c],
                    adv.mask_N_T[c],
                    clip_low=train_cfg.clip_low,
                    clip_high=train_cfg.clip_high,
                    teacher_logp=None if teacher_logp is None else teacher_logp[c],
                    gap_threshold=train_cfg.logp_gap_mask,
                    num_rollouts=N,
                )
            if direct:
                s = batch_signals(c, batch, old_logp, rewards_N, group_ids_N, scored)
                if full_logits:
                    assert teacher_logits is not None, "an objective needs full teacher logits"
                    s.teacher_logits_N_T_V = teacher_logits(c)
                for name, coef, objective in direct:
                    per_token, m = objective.loss(s, logits)
                    term = rollout_mean_loss(per_token, m * keep_f[c][:, None], N)
                    loss = loss + coef * term
                    if epoch == 0:
                        direct_losses[name] += float(term.detach())
                s.teacher_logits_N_T_V = None  # gone with this micro-batch once its backward ran
            loss.backward()
            w = len(c) / N
            # the clip only acts from the second epoch on (rho == 1 in the first): average all
            totals["clip_frac"] += st["clip_frac"] * w / train_cfg.epochs
            if epoch == 0:
                totals["loss"] += loss.item()
                totals["entropy"] += float((entropy * sub.response_mask_N_T).sum())
                totals["gap_masked_frac"] += st["gap_masked_frac"] * w
        if train_cfg.max_grad_norm > 0:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(student.parameters(), train_cfg.max_grad_norm)
            )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    n_tok = float(batch.response_mask_N_T.sum().clamp(min=1))
    return UpdateResult(
        totals["loss"],
        totals["entropy"] / n_tok,
        totals["clip_frac"],
        totals["gap_masked_frac"],
        grad_norm,
        old_logp,
        adv,
        direct_losses,
    )
