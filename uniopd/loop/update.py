"""The policy update on one rollout batch (METHOD 2 and 5), one path for every method.

1. pi_old: a no-grad pass over the batch gives the sampled tokens' log-probs.
2. Advantages, once for the whole batch: the weighted sum of the advantage objectives; the
   distillation part margin-calibrated when asked (calibration needs whole groups;
   uniopd.loop.advantages).
3. For each PPO epoch and micro-batch: the PPO-clip surrogate on the advantages plus the weighted
   direct losses (full-vocabulary or top-K divergences) on the current logits; gradients
   accumulate, one optimizer step per epoch.

The teacher's full logits, when an objective needs them, are computed per micro-batch inside
step 3 and dropped after it, so they never exist for the whole batch at once. Micro-batches go by
rows or by a token budget (uniopd.engine.batching); the advantage path runs each micro-batch's
forward in length buckets without padding between prompt and response (uniopd.engine.length_buckets,
laid out once a step for every epoch); forward passes run under the run's precision
(uniopd.engine.precision); with several processes, gradients are summed across them before the
step (uniopd.engine.distributed), which makes the step the one-process step on the whole batch.

`PolicyUpdate` is built once per run from what stays fixed (student, optimizer, objectives,
calibrator, train settings, precision, processes) and called once per step on its batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from uniopd.algorithms import ppo_clip_loss, rollout_mean_loss
from uniopd.engine.batching import micro_batches
from uniopd.engine.distributed import Dist
from uniopd.engine.fsdp import gradient_scale, is_sharded, local_value
from uniopd.engine.length_buckets import LengthBuckets
from uniopd.engine.logprobs import response_logits, sampled_logprobs
from uniopd.engine.precision import Precision
from uniopd.engine.sequences import SequenceBatch
from uniopd.loop.advantages import (
    Advantages,
    batch_signals,
    calibrate_globally,
    compute_advantages,
)
from uniopd.loop.preference import PairStep, PreferenceUpdate
from uniopd.loop.scoring import TeacherSignals
from uniopd.objectives import Need


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
    pair_metrics: dict[str, float] = field(default_factory=dict)  # pair objectives' (preference.py)


@dataclass
class _Step:
    """One step's rollout batch as the update walks it: what the caller gave, its micro-batches,
    pi_old, the advantages, and the totals the first epoch adds up."""

    batch: SequenceBatch
    scored: TeacherSignals
    rewards_N: torch.Tensor
    group_ids_N: torch.Tensor
    keep_f_N: torch.Tensor  # keep_N as the loss's dtype: a direct loss's row weight
    teacher_logits: Callable[[torch.Tensor], torch.Tensor] | None
    chunks: list[torch.Tensor]  # micro-batches' rows, lock-step padding last
    layouts: list[LengthBuckets]  # each micro-batch's forward layout, the same every epoch
    real: int  # the micro-batches of this process's own; those after them are padding
    n_global: int  # the loss denominator: every rollout of the step, masked included
    old_logp_N_T: torch.Tensor
    trainer_logp_N_T: torch.Tensor | None
    advantages: Advantages
    totals: dict[str, float] = field(
        default_factory=lambda: {
            "loss": 0.0,
            "entropy": 0.0,
            "clip_frac": 0.0,
            "gap_masked_frac": 0.0,
        }
    )
    direct_losses: dict[str, float] = field(default_factory=dict)
    pairs: PairStep | None = None  # the pair objectives' pairs (uniopd.loop.preference)
    pair_grad_N_T: torch.Tensor | None = None  # their dL/d(log pi) at this epoch's weights


class PolicyUpdate:
    """The policy update, built once per run from what stays fixed between steps (the student,
    its optimizer, the objectives, the calibrator, the train settings, the precision, the
    processes) and called once per step on that step's rollout batch and teacher signals."""

    def __init__(
        self,
        student,
        optimizer,
        objectives: list,
        train_cfg,
        *,
        calibrator=None,
        precision: Precision | None = None,
        dist: Dist | None = None,
    ):
        """`objectives`: (name, coef, objective) triples; `calibrator`: the margin calibrator, or
        None for none. With several processes (`dist`), the calibrator sees every process's
        rollouts. `precision` defaults to fp32."""
        self.student, self.optimizer, self.train_cfg = student, optimizer, train_cfg
        self.objectives = objectives
        self.dist = dist or Dist()
        # (fp32 neither autocasts nor scales: the device it is given is never read)
        self.precision = precision or Precision("fp32", next(student.parameters()).device)
        self.calibrator = calibrate_globally(calibrator, self.dist)
        self.direct = [(name, coef, o) for name, coef, o in objectives if o.kind == "loss"]
        self.has_advantage = any(o.kind == "advantage" for _, _, o in objectives)
        self.full_logits = any(Need.TEACHER_LOGITS in o.needs() for _, _, o in objectives)
        self.sharded = is_sharded(student)
        self.scale = gradient_scale(student, self.dist.world)
        self.preference = PreferenceUpdate(objectives, self.dist)

    def __call__(
        self,
        batch: SequenceBatch,
        scored: TeacherSignals,
        rewards_N: torch.Tensor,
        group_ids_N: torch.Tensor,
        keep_N: torch.Tensor,
        calibration_correct_N: torch.Tensor,
        teacher_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        rollout_logp_N_T: torch.Tensor | None = None,
        file_score_N: torch.Tensor | None = None,
        pair_weight_N_T: torch.Tensor | None = None,
    ) -> UpdateResult:
        """`scored`: the teacher phase's signals (whole batch); `teacher_logits(rows)`: the full
        teacher logits of a micro-batch, when an objective needs them. With several processes,
        `batch` is this process's share of whole groups and `group_ids_N` are global.
        `rollout_logp_N_T`: the rollout engine's log-probs of the sampled tokens, which are pi_old
        when `train_cfg.old_logp` is "rollout" (one student forward pass fewer per step).
        `file_score_N`: the rows' scores when they came from a pair file (pair objectives);
        `pair_weight_N_T`: where each row's pair is decided (SENTINEL's sentence pairs)."""
        N = batch.input_ids_N_L.shape[0]
        chunks, real = self._micro_batches(batch)
        # built once a step: the rows (not the weights) decide each micro-batch's layout
        layouts = [self._layout(batch, c) for c in chunks]
        first = self._first_epoch_is_pi_old(layouts, rollout_logp_N_T)
        if first is not None:  # pi_old read off the first epoch's own forward pass
            old_logp = torch.zeros(batch.response_mask_N_T.shape, device=first[1].device)
            old_logp[chunks[0], : first[1].shape[1]] = first[1].detach().float()
            trainer_logp = None
        else:
            old_logp, trainer_logp = self._pi_old(batch, chunks, layouts, rollout_logp_N_T)
        everything = torch.arange(N, device=batch.input_ids_N_L.device)
        adv = compute_advantages(
            self.objectives,
            batch_signals(everything, batch, old_logp, rewards_N, group_ids_N, scored),
            keep_N,
            self.calibrator,
            calibration_correct_N,
        )
        s = _Step(
            batch,
            scored,
            rewards_N,
            group_ids_N,
            keep_N.to(old_logp.dtype),
            teacher_logits,
            chunks,
            layouts,
            real,
            N * self.dist.world,
            old_logp,
            trainer_logp,
            adv,
            direct_losses={name: 0.0 for name, _, _ in self.direct},
        )
        if self.preference.active:
            mask = batch.response_mask_N_T
            s.pairs = self.preference.pairs(
                rewards_N,
                group_ids_N,
                keep_N,
                mask,
                scored.teacher_logp_N_T,
                file_score_N,
                pair_weight_N_T,
            )
        grad_norm = 0.0
        for epoch in range(self.train_cfg.epochs):
            if s.pairs is not None:
                self._pair_coefficients(s, epoch)
            for k, c in enumerate(s.chunks):
                self._micro_batch(s, epoch, k, c, first if epoch == 0 else None)
            grad_norm = self._optimizer_step()
        return self._result(s, grad_norm)

    def _micro_batches(self, batch: SequenceBatch) -> tuple[list[torch.Tensor], int]:
        """The micro-batches' rows, and how many are this process's own: a sharded student's
        forward is a collective, so every process runs the same number, the extra ones repeating
        the last micro-batch with weight 0."""
        cfg = self.train_cfg
        rows_cap = cfg.micro_batch_size
        if self.full_logits:  # bounds the teacher's [n, T, V] logits
            rows_cap = min(rows_cap or batch.input_ids_N_L.shape[0], cfg.logits_micro_batch_size)
        chunks = micro_batches(batch, rows_cap, cfg.max_tokens_per_micro_batch)
        real = len(chunks)
        if self.sharded:
            chunks += [chunks[-1]] * (int(self.dist.max(len(chunks))) - len(chunks))
        return chunks, real

    def _layout(self, batch: SequenceBatch, c: torch.Tensor) -> LengthBuckets:
        """Micro-batch `c`'s forward layout. Direct losses read the student's full logits and
        the signals at full width; the advantage path needs only the sampled tokens' log-probs,
        over the micro-batch's own columns, in length buckets (uniopd.engine.length_buckets;
        not for a sharded student, whose forward passes every process must run alike)."""
        if self.direct:
            return LengthBuckets(batch.rows(c))
        sub = batch.rows(c).trimmed()
        return LengthBuckets(sub) if self.sharded else LengthBuckets.of(sub)

    def _pi_old(
        self,
        batch: SequenceBatch,
        chunks: list[torch.Tensor],
        layouts: list[LengthBuckets],
        rollout_logp_N_T: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """pi_old's log-probs of the sampled tokens `[N, T]`, and, when they came from the
        rollout engine, a buffer for the trainer's own (filled by the first epoch)."""
        device = batch.input_ids_N_L.device
        if self.train_cfg.old_logp == "rollout" and rollout_logp_N_T is not None:
            # the sampler's own log-probs: off from the trainer's by the rollout/trainer mismatch
            # (logged), which the PPO ratio then sees from the first epoch on
            old_logp = rollout_logp_N_T.to(device=device, dtype=torch.float32)
            old_logp = old_logp * batch.response_mask_N_T
            return old_logp, torch.zeros_like(old_logp)
        old_logp = torch.zeros(batch.response_mask_N_T.shape, device=device)
        with torch.no_grad(), self.precision.autocast():
            for c, layout in zip(chunks, layouts):
                got = layout.logprobs(
                    self.student, chunk_tokens=self.train_cfg.logprob_chunk_tokens
                )
                # (a repeated micro-batch writes the same values again)
                old_logp[c, : got.shape[1]] = got
        return old_logp, None

    def _first_epoch_is_pi_old(self, layouts: list[LengthBuckets], rollout_logp_N_T):
        """The first epoch's forward pass of the whole batch, done now, when it can serve as
        pi_old (else None): with one micro-batch, no optimizer step comes before it, so its
        log-probs are the ones a separate no-grad pass would give, one student forward pass
        fewer per step. Not with direct losses (their log-probs come from full logits, not
        the chunked head a separate pass uses), pair objectives or rollout-engine pi_old."""
        if (
            len(layouts) != 1
            or self.direct
            or self.preference.active
            or (self.train_cfg.old_logp == "rollout" and rollout_logp_N_T is not None)
        ):
            return None
        return self._forward(layouts[0])

    def _micro_batch(
        self, s: _Step, epoch: int, k: int, c: torch.Tensor, done: tuple | None = None
    ) -> None:
        """Forward, loss and backward of micro-batch `c` (rows) in `epoch`; `done`: its forward
        pass when already run (the first epoch's, when it gave pi_old)."""
        padding = k >= s.real  # lock-step padding of a sharded student: no gradient, no totals
        sub = s.layouts[k].batch
        w = sub.response_mask_N_T.shape[1]
        # (entropy is logged from the first epoch only: later epochs skip its [tokens, V] pass)
        forward = done if done is not None else self._forward(s.layouts[k], epoch == 0)
        logits, logp, entropy = forward
        if s.trainer_logp_N_T is not None and epoch == 0:
            s.trainer_logp_N_T[c, :w] = logp.detach().float()
        loss, st = self._surrogate(s, c, w, logp)
        if self.direct:
            loss = self._add_direct_losses(s, c, logits, loss, epoch == 0 and not padding)
        # the pair objectives' exact gradient (uniopd.loop.preference); their loss is logged apart
        pair_term = 0.0
        if s.pairs is not None:  # (a step without pairs: a zero that still has a graph)
            grad = torch.zeros_like(logp) if s.pair_grad_N_T is None else s.pair_grad_N_T[c, :w]
            pair_term = (grad * logp).sum()
        if padding:
            self.precision.backward((loss + pair_term) * 0.0)
            return
        self.precision.backward((loss + pair_term) * self.scale)
        share = len(c) / s.n_global
        # the clip acts from the second epoch on (rho == 1 in the first, unless pi_old is the
        # rollout engine's): average over all
        s.totals["clip_frac"] += st["clip_frac"] * share / self.train_cfg.epochs
        if epoch == 0:
            s.totals["loss"] += loss.item()
            s.totals["entropy"] += float((entropy * sub.response_mask_N_T).sum())
            s.totals["gap_masked_frac"] += st["gap_masked_frac"] * share

    def _forward(self, layout: LengthBuckets, with_entropy: bool = True):
        """(full logits `[n, T, V]` when a direct loss reads them, else None; the sampled tokens'
        log-probs `[n, T]`; their entropy `[n, T]`, or None without `with_entropy`), under the
        run's precision."""
        chunk = self.train_cfg.logprob_chunk_tokens
        with self.precision.autocast():
            if self.direct:
                sub = layout.batch
                logits = response_logits(self.student, sub)
                if not with_entropy:
                    return logits, sampled_logprobs(logits, sub.response_ids_N_T), None
                logp, entropy = sampled_logprobs(logits, sub.response_ids_N_T, with_entropy=True)
                return logits, logp, entropy
            if not with_entropy:
                return None, layout.logprobs(self.student, chunk_tokens=chunk), None
            logp, entropy = layout.logprobs_and_entropy(self.student, chunk_tokens=chunk)
            return None, logp, entropy

    def _pair_coefficients(self, s: _Step, epoch: int) -> None:
        """The pair losses' dL/d(log pi) at this epoch's weights, from a no-grad pass (the first
        epoch's is pi_old's when the trainer computed it); the first epoch's losses are logged."""
        assert s.pairs is not None and s.scored.reference_logp_N_T is not None
        logp = s.old_logp_N_T
        if epoch > 0 or s.trainer_logp_N_T is not None:
            logp, _ = self._pi_old(s.batch, s.chunks, s.layouts, None)
        mask = s.batch.response_mask_N_T
        ref = s.scored.reference_logp_N_T
        s.pair_grad_N_T = self.preference.coefficients(s.pairs, logp, ref, mask, epoch == 0)
        if epoch == 0:
            s.direct_losses.update(s.pairs.losses)
            # (already a mean over every process's pairs: each process adds its share of it)
            total = sum(coef * s.pairs.losses[n] for n, coef, _ in self.preference.pair)
            s.totals["loss"] += total / self.dist.world

    def _surrogate(
        self, s: _Step, c: torch.Tensor, w: int, logp: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """The PPO-clip surrogate on the advantages of rows `c` (their first `w` columns)."""
        if not self.has_advantage:
            return torch.zeros((), device=logp.device), {"clip_frac": 0.0, "gap_masked_frac": 0.0}
        cfg, teacher_logp = self.train_cfg, s.scored.teacher_logp_N_T
        return ppo_clip_loss(
            logp,
            s.old_logp_N_T[c, :w],
            s.advantages.values_N_T[c, :w],
            s.advantages.mask_N_T[c, :w],
            clip_low=cfg.clip_low,
            clip_high=cfg.clip_high,
            teacher_logp=None if teacher_logp is None else teacher_logp[c, :w],
            gap_threshold=cfg.logp_gap_mask,
            num_rollouts=s.n_global,
        )

    def _add_direct_losses(
        self, s: _Step, c: torch.Tensor, logits, loss: torch.Tensor, record: bool
    ) -> torch.Tensor:
        """`loss` plus each weighted direct loss of rows `c`, added one by one; `record`: add
        each to the step's direct-loss totals."""
        signals = batch_signals(c, s.batch, s.old_logp_N_T, s.rewards_N, s.group_ids_N, s.scored)
        if self.full_logits:
            assert s.teacher_logits is not None, "an objective needs full teacher logits"
            signals.teacher_logits_N_T_V = s.teacher_logits(c)
        for name, coef, objective in self.direct:
            per_token, m = objective.loss(signals, logits)
            term = rollout_mean_loss(per_token, m * s.keep_f_N[c][:, None], s.n_global)
            loss = loss + coef * term
            if record:
                s.direct_losses[name] += float(term.detach())
        signals.teacher_logits_N_T_V = None  # gone with this micro-batch once its backward ran
        return loss

    def _optimizer_step(self) -> float:
        """Gradients summed over processes, unscaled, clipped, stepped and cleared; the gradient
        norm before clipping (0 when not clipping)."""
        # read now, not before the passes: a sharded student swaps its registered parameters
        # between sharded and whole ones around forward and backward
        params = [p for p in self.student.parameters() if p.requires_grad]
        if not self.sharded:  # (a sharded student's gradients were reduced in its backward)
            # still scaled (fp16): every process then skips or steps alike
            self.dist.sum_grads(params)
        self.precision.unscale(self.optimizer)
        grad_norm = 0.0
        if self.train_cfg.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.train_cfg.max_grad_norm)
            grad_norm = float(local_value(norm))  # (a sharded student's norm is a DTensor)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _result(self, s: _Step, grad_norm: float) -> UpdateResult:
        """The step's totals summed over processes; entropy per response token."""
        totals = {k: self.dist.sum(v) for k, v in s.totals.items()}
        # (pair losses are already summed over processes, by uniopd.loop.preference)
        pair_names = set() if s.pairs is None else set(s.pairs.losses)
        direct_losses = {
            k: v if k in pair_names else self.dist.sum(v) for k, v in s.direct_losses.items()
        }
        n_tok = max(self.dist.sum(float(s.batch.response_mask_N_T.sum())), 1.0)
        return UpdateResult(
            totals["loss"],
            totals["entropy"] / n_tok,
            totals["clip_frac"],
            totals["gap_masked_frac"],
            grad_norm,
            s.old_logp_N_T,
            s.advantages,
            direct_losses,
            s.trainer_logp_N_T,
            {} if s.pairs is None else s.pairs.metrics,
        )
