"""The policy update on one rollout batch (METHOD 2 and 5), one path for every method.

1. pi_old: a no-grad pass over the batch gives the sampled tokens' log-probs.
2. Advantages, once for the whole batch: the weighted sum of the advantage objectives; the
   distillation part margin-calibrated when asked (calibration needs whole groups).
3. For each PPO epoch and micro-batch: the PPO-clip surrogate on the advantages plus the weighted
   direct losses (full-vocabulary or top-K divergences) on the current logits; gradients
   accumulate, one optimizer step per epoch.

The teacher's full logits, when an objective needs them, are computed per micro-batch inside
step 3 and dropped after it, so they never exist for the whole batch at once. Micro-batches go by
rows or by a token budget (uniopd.engine.batching); forward passes run under the run's precision
(uniopd.engine.precision); with several processes, gradients are summed across them before the
step (uniopd.engine.distributed), which makes the step the one-process step on the whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from uniopd.algorithms import ppo_clip_loss, rollout_mean_loss
from uniopd.engine.batching import micro_batches
from uniopd.engine.distributed import Dist
from uniopd.engine.fsdp import gradient_scale, is_sharded, local_value
from uniopd.engine.logprobs import response_logits, response_logprobs, sampled_logprobs
from uniopd.engine.precision import Precision
from uniopd.engine.sequences import SequenceBatch
from uniopd.loop.scoring import TeacherSignals
from uniopd.objectives import Need, Signals
from uniopd.strategies.base import Calibration


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
    # METHOD 4.3: the rollouts with a return to compare (a finite teacher score on at least one
    # response token); the others are out of the margin statistics and the order metrics
    scored_N: torch.Tensor | None = None
    dropped_N: torch.Tensor | None = None  # rollouts the greedy margin mask zeroed


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
    # the trainer's own log-probs of the sampled tokens (first epoch, before any step), when
    # pi_old came from the rollout engine (train.old_logp: rollout); else old_logp_N_T is them
    trainer_logp_N_T: torch.Tensor | None = None


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
    if distill is not None and distill_mask is not None:  # (set together)
        out.distill_raw_N_T = out.distill_cal_N_T = distill
        out.distill_mask_N_T = distill_mask
        # an empty response or one the teacher left without a finite score has no return: its
        # zeroed advantages would enter the margin statistics as a return of 0 (METHOD 4.3)
        out.scored_N = distill_mask.sum(-1) > 0
        if calibrator is not None:
            start = time.perf_counter()
            cal = calibrator.calibrate(
                distill,
                distill_mask,
                calibration_correct_N.masked_fill(~out.scored_N, float("nan")),
                signals.group_ids_N,
            )
            out.calibrate_seconds = time.perf_counter() - start
            out.distill_cal_N_T, out.calibration = cal.advantages_N_T, cal.metrics
            out.dropped_N = cal.dropped_N
        out.values_N_T = out.values_N_T + out.distill_cal_N_T
    # balanced-out rollouts: loss mask 0, slot in N kept
    out.mask_N_T = loss_mask * keep_N.to(mask.dtype)[:, None]
    out.values_N_T = out.values_N_T * out.mask_N_T
    return out


def calibrate_globally(calibrator, dist: Dist):
    """The calibrator seeing every process's rollouts (global-scope statistics are global); each
    process keeps its own rows. Group-scope statistics come out the same either way."""
    if calibrator is None or not dist.active:
        return calibrator

    class Global:
        def calibrate(self, advantages_N_T, mask_N_T, correct_N, group_ids_N) -> Calibration:
            n, t = advantages_N_T.shape
            mine = slice(dist.rank * n, (dist.rank + 1) * n)
            cal = calibrator.calibrate(
                dist.gather_rows(advantages_N_T),
                dist.gather_rows(mask_N_T),
                dist.gather_rows(correct_N),
                dist.gather_rows(group_ids_N),
            )
            dropped = None if cal.dropped_N is None else cal.dropped_N[mine]
            return Calibration(cal.advantages_N_T[mine, :t], dropped, cal.metrics)

    return Global()


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
    *,
    precision: Precision | None = None,
    dist: Dist | None = None,
    rollout_logp_N_T: torch.Tensor | None = None,
) -> UpdateResult:
    """`scored`: the teacher phase's signals (whole batch); `teacher_logits(rows)`: the full
    teacher logits of a micro-batch, when an objective needs them. With several processes
    (`dist`), `batch` is this process's share of whole groups and `group_ids_N` are global.
    `rollout_logp_N_T`: the rollout engine's log-probs of the sampled tokens, which are pi_old
    when `train_cfg.old_logp` is "rollout" (one student forward pass fewer per step)."""
    dist = dist or Dist()
    device = batch.input_ids_N_L.device
    precision = precision or Precision("fp32", device)
    N = batch.input_ids_N_L.shape[0]
    n_global = N * dist.world  # the loss denominator: every rollout of the step, masked included
    rows_cap = train_cfg.micro_batch_size
    full_logits = any(Need.TEACHER_LOGITS in o.needs() for _, _, o in objectives)
    if full_logits:  # bounds the teacher's [n, T, V] logits
        rows_cap = min(rows_cap or N, train_cfg.logits_micro_batch_size)
    direct = [(name, coef, o) for name, coef, o in objectives if o.kind == "loss"]
    chunk = train_cfg.logprob_chunk_tokens
    # direct losses read the student's full logits and the signals at full width; the advantage
    # path needs only the sampled tokens' log-probs, over each micro-batch's own columns
    chunks = micro_batches(batch, rows_cap, train_cfg.max_tokens_per_micro_batch)
    sharded = is_sharded(student)
    scale = gradient_scale(student, dist.world)
    real = len(chunks)
    if sharded:  # every forward is a collective: the same number on every process, the extra
        # ones repeat the last micro-batch with weight 0
        chunks += [chunks[-1]] * (int(dist.max(len(chunks))) - len(chunks))

    def rows(c: torch.Tensor) -> SequenceBatch:
        return batch.rows(c) if direct else batch.rows(c).trimmed()

    from_rollout = train_cfg.old_logp == "rollout"
    trainer_logp = None
    if from_rollout and rollout_logp_N_T is not None:
        # the sampler's own log-probs: off from the trainer's by the rollout/trainer mismatch
        # (logged), which the PPO ratio then sees from the first epoch on
        old_logp = rollout_logp_N_T.to(device=device, dtype=torch.float32)
        old_logp = old_logp * batch.response_mask_N_T
        trainer_logp = torch.zeros_like(old_logp)  # filled by the first epoch's forward passes
    else:
        old_logp = torch.zeros(batch.response_mask_N_T.shape, device=device)
        with torch.no_grad(), precision.autocast():
            for c in chunks:
                sub = rows(c)
                old_logp[c, : sub.response_mask_N_T.shape[1]] = response_logprobs(
                    student, sub, chunk_tokens=chunk
                )  # a repeated micro-batch writes the same values again
    everything = torch.arange(N, device=device)
    adv = compute_advantages(
        objectives,
        batch_signals(everything, batch, old_logp, rewards_N, group_ids_N, scored),
        keep_N,
        calibrate_globally(calibrator, dist),
        calibration_correct_N,
    )
    has_advantage = any(o.kind == "advantage" for _, _, o in objectives)
    teacher_logp = scored.teacher_logp_N_T
    keep_f = keep_N.to(old_logp.dtype)

    totals = {"loss": 0.0, "entropy": 0.0, "clip_frac": 0.0, "gap_masked_frac": 0.0}
    direct_losses = {name: 0.0 for name, _, _ in direct}
    grad_norm = 0.0
    for epoch in range(train_cfg.epochs):
        for k, c in enumerate(chunks):
            padding = k >= real  # lock-step padding of a sharded student: no gradient, no totals
            sub = rows(c)
            w = sub.response_mask_N_T.shape[1]
            with precision.autocast():
                if direct:
                    logits = response_logits(student, sub)
                    logp, entropy = sampled_logprobs(
                        logits, sub.response_ids_N_T, with_entropy=True
                    )
                else:
                    logits = None
                    logp, entropy = response_logprobs(
                        student, sub, with_entropy=True, chunk_tokens=chunk
                    )
            if trainer_logp is not None and epoch == 0:
                trainer_logp[c, :w] = logp.detach().float()
            loss = torch.zeros((), device=logp.device)
            st = {"clip_frac": 0.0, "gap_masked_frac": 0.0}
            if has_advantage:
                loss, st = ppo_clip_loss(
                    logp,
                    old_logp[c, :w],
                    adv.values_N_T[c, :w],
                    adv.mask_N_T[c, :w],
                    clip_low=train_cfg.clip_low,
                    clip_high=train_cfg.clip_high,
                    teacher_logp=None if teacher_logp is None else teacher_logp[c, :w],
                    gap_threshold=train_cfg.logp_gap_mask,
                    num_rollouts=n_global,
                )
            if direct:
                s = batch_signals(c, batch, old_logp, rewards_N, group_ids_N, scored)
                if full_logits:
                    assert teacher_logits is not None, "an objective needs full teacher logits"
                    s.teacher_logits_N_T_V = teacher_logits(c)
                for name, coef, objective in direct:
                    per_token, m = objective.loss(s, logits)
                    term = rollout_mean_loss(per_token, m * keep_f[c][:, None], n_global)
                    loss = loss + coef * term
                    if epoch == 0 and not padding:
                        direct_losses[name] += float(term.detach())
                s.teacher_logits_N_T_V = None  # gone with this micro-batch once its backward ran
            if padding:
                precision.backward(loss * 0.0)
                continue
            precision.backward(loss * scale)
            share = len(c) / n_global
            # the clip acts from the second epoch on (rho == 1 in the first, unless pi_old is
            # the rollout engine's): average over all
            totals["clip_frac"] += st["clip_frac"] * share / train_cfg.epochs
            if epoch == 0:
                totals["loss"] += loss.item()
                totals["entropy"] += float((entropy * sub.response_mask_N_T).sum())
                totals["gap_masked_frac"] += st["gap_masked_frac"] * share
        # read now, not before the passes: a sharded student swaps its registered parameters
        # between sharded and whole ones around forward and backward
        params = [p for p in student.parameters() if p.requires_grad]
        if not sharded:  # (a sharded student's gradients were reduced in its backward)
            dist.sum_grads(params)  # still scaled (fp16): every process then skips or steps alike
        precision.unscale(optimizer)
        if train_cfg.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, train_cfg.max_grad_norm)
            grad_norm = float(local_value(norm))  # (a sharded student's norm is a DTensor)
        precision.step(optimizer)
        optimizer.zero_grad(set_to_none=True)
    totals = {k: dist.sum(v) for k, v in totals.items()}
    direct_losses = {k: dist.sum(v) for k, v in direct_losses.items()}
    n_tok = max(dist.sum(float(batch.response_mask_N_T.sum())), 1.0)
    return UpdateResult(
        totals["loss"],
        totals["entropy"] / n_tok,
        totals["clip_frac"],
        totals["gap_masked_frac"],
        grad_norm,
        old_logp,
        adv,
        direct_losses,
        trainer_logp,
    )
