"""Advantages of one rollout batch (METHOD 2 and 4): the weighted sum of the advantage
objectives, the distillation part margin-calibrated when asked. Calibration needs whole groups, so
this runs once over the whole batch, before any micro-batch (uniopd.loop.update); with several
processes the calibrator sees every process's rollouts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from uniopd.engine.distributed import Dist
from uniopd.engine.sequences import SequenceBatch
from uniopd.loop.scoring import TeacherSignals
from uniopd.objectives import Signals
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
