"""A step's work split over data-parallel processes: each process holds whole groups of one
share of the prompts; what must see the whole batch sees it gathered.

- online balancing runs on every process's outcomes at once (global scope is global, and the
  random masks are the ones one process would draw), each process keeping its own rows;
- the step's record (rollouts, teacher signals, advantages) is gathered for the metrics and the
  per-rollout logs, which only the first process writes.

With one process every function here returns its input.
"""

from __future__ import annotations

import torch

from uniopd.engine.distributed import Dist
from uniopd.engine.sequences import SequenceBatch
from uniopd.loop.advantages import Advantages
from uniopd.loop.records import RolloutBatch, StepRecord
from uniopd.loop.scoring import TeacherSignals
from uniopd.loop.update import UpdateResult


def balance_globally(balancer, correct_N, group_ids_N, generator, dist: Dist) -> torch.Tensor:
    """The balancer's keep mask over every process's rollouts; this process's rows of it."""
    if not dist.active:
        return balancer.keep(correct_N, group_ids_N, generator)
    n = correct_N.shape[0]
    keep = balancer.keep(dist.gather_rows(correct_N), dist.gather_rows(group_ids_N), generator)
    return keep[dist.rank * n : (dist.rank + 1) * n]


def _gather_batch(b: SequenceBatch, pad_id: int, dist: Dist) -> SequenceBatch:
    p = b.prompt_width
    prompt_ids = dist.gather_rows(b.input_ids_N_L[:, :p], pad_id, left=True)
    prompt_attn = dist.gather_rows(b.attention_mask_N_L[:, :p], 0, left=True)
    response_ids = dist.gather_rows(b.input_ids_N_L[:, p:], pad_id)
    response_attn = dist.gather_rows(b.attention_mask_N_L[:, p:], 0)
    return SequenceBatch(
        torch.cat([prompt_ids, response_ids], 1),
        torch.cat([prompt_attn, response_attn], 1),
        dist.gather_rows(b.response_mask_N_T),
        prompt_ids.shape[1],
    )


def gather_record(r: StepRecord, pad_id: int, dist: Dist) -> StepRecord:
    """The whole step's record on every process (a collective: every process calls it)."""
    if not dist.active:
        return r

    def rows(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else dist.gather_rows(t)

    ro, sc, up = r.rollouts, r.scored, r.update
    rollouts = RolloutBatch(
        dist.gather_objects(ro.problems),
        dist.gather_objects(ro.rows),
        _gather_batch(ro.batch, pad_id, dist),
        dist.gather_objects(ro.texts),
        dist.gather_rows(ro.rewards_N),
        dist.gather_rows(ro.group_ids_N),
        dist.gather_rows(ro.keep_N),
        rows(ro.engine_logp_N_T),
    )
    scored = TeacherSignals(
        dist.gather_objects(sc.domains),
        {},  # the teachers' own prompts are the teachers' business, not the logs'
        sc.special_token_ids,
        rows(sc.teacher_logp_N_T),
        rows(sc.teacher_topk_logp_N_T_K),
        rows(sc.teacher_topk_ids_N_T_K),
        rows(sc.reference_logp_N_T),
    )
    a = up.advantages
    advantages = Advantages(
        dist.gather_rows(a.values_N_T),
        dist.gather_rows(a.mask_N_T),
        rows(a.distill_raw_N_T),
        rows(a.distill_cal_N_T),
        rows(a.distill_mask_N_T),
        a.calibration,  # computed on the gathered batch already
        a.calibrate_seconds,
    )
    update = UpdateResult(
        up.loss,
        up.entropy,
        up.clip_frac,
        up.gap_masked_frac,
        up.grad_norm,
        dist.gather_rows(up.old_logp_N_T),
        advantages,
        up.direct_losses,
        None if up.trainer_logp_N_T is None else dist.gather_rows(up.trainer_logp_N_T),
    )
    seconds = {k: dist.max(v) for k, v in sorted(r.seconds.items())}  # the slowest process's
    return StepRecord(r.step, rollouts, scored, update, seconds, r.lr)
