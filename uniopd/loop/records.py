"""What one training step produced, as a typed record, and how it is written to the run directory:
the metrics.jsonl line (one schema every step) and the per-rollout records."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from uniopd.algorithms.gradient_share import gradient_share
from uniopd.engine.sequences import SequenceBatch
from uniopd.loop.order_metrics import order_report
from uniopd.loop.scoring import TeacherSignals
from uniopd.loop.update import UpdateResult
from uniopd.tasks.problem import Problem


@dataclass
class RolloutBatch:
    """The sampled, graded and balanced rollouts of one step (prompt-major, G per prompt)."""

    problems: list[Problem]
    rows: list[Problem]  # one per rollout
    batch: SequenceBatch
    texts: list[str]
    rewards_N: torch.Tensor  # 1 / 0 / NaN (ungraded)
    group_ids_N: torch.Tensor
    keep_N: torch.Tensor  # online balancing's keep mask
    engine_logp_N_T: torch.Tensor | None = None  # the rollout engine's log-probs of the tokens
    file_score_N: torch.Tensor | None = None  # a pair file's scores (uniopd.loop.pair_batches)
    # [N, T] where each row's pair is decided (SENTINEL's sentence, uniopd.loop.sentinel)
    pair_weight_N_T: torch.Tensor | None = None

    @property
    def domains(self) -> list[str]:
        return [p.domain for p in self.rows]


@dataclass
class StepRecord:
    step: int
    rollouts: RolloutBatch
    scored: TeacherSignals  # the teacher phase's signals
    update: UpdateResult
    seconds: dict[str, float]  # per phase
    lr: float


def step_metrics(r: StepRecord, train_domains: list[str], epochs: int, balancing: bool) -> dict:
    ro, up = r.rollouts, r.update
    rewards, mask = ro.rewards_N, ro.batch.response_mask_N_T
    N, n_tokens = len(ro.rows), float(mask.sum())
    graded = ~torch.isnan(rewards)
    out: dict = {
        "step": r.step,
        "loss": up.loss,
        "reward": float(torch.nan_to_num(rewards, nan=0.0).mean()),
        "ungraded_frac": float((~graded).float().mean()),
        "response_length": n_tokens / N,
        "entropy": up.entropy,
        "lr": r.lr,
        "grad_norm": up.grad_norm,
        "clip_frac": up.clip_frac,
        "gap_masked_frac": up.gap_masked_frac,
    }
    for domain in train_domains:  # every domain every step (None if not sampled): one schema
        sel = torch.tensor([d == domain for d in ro.domains])
        out[f"accuracy/{domain}"] = (
            float(torch.nan_to_num(rewards[sel], nan=0.0).mean()) if sel.any() else None
        )
    out.update({f"loss/{name}": value for name, value in up.direct_losses.items()})
    out.update(up.pair_metrics)  # pair objectives: pairs per step, reward accuracy, margin
    teacher_logp = r.scored.teacher_logp_N_T
    if teacher_logp is not None:
        finite = torch.isfinite(teacher_logp) & (mask > 0)
        gap = float((teacher_logp - up.old_logp_N_T)[finite].mean()) if finite.any() else 0.0
        out["teacher_student_logp_gap"], out["reverse_kl"] = gap, -gap
    failed = teacher_failed_N(r.scored, mask)
    if failed is not None:  # rollouts the teacher phase left without scores (NaN: loss mask 0)
        out["teacher/failed_rollouts"] = int(failed.sum())
        out["teacher/failed_frac"] = float(failed.float().mean())
    trainer_logp = up.old_logp_N_T if up.trainer_logp_N_T is None else up.trainer_logp_N_T
    out.update(logp_mismatch(ro.engine_logp_N_T, trainer_logp, mask))
    if balancing:
        out["balance/kept"], out["balance/masked"] = int(ro.keep_N.sum()), int((~ro.keep_N).sum())
    out.update(order_report(up.advantages, rewards, ro.group_ids_N))
    shares = gradient_share(up.advantages.values_N_T, up.advantages.mask_N_T, rewards)
    out["balance/grad_share_correct"] = None if shares is None else shares[0]
    out["balance/grad_share_incorrect"] = None if shares is None else shares[1]
    seconds = r.seconds
    out.update({f"time/{k}": round(v, 4) for k, v in seconds.items()})
    out["time/step"] = round(sum(seconds.values()), 4)
    cells = ro.batch.input_ids_N_L.numel()
    out["tokens_per_s/rollout"] = n_tokens / max(seconds["rollout"], 1e-9)
    out["tokens_per_s/update"] = epochs * cells / max(seconds["update"], 1e-9)
    if "teacher" in seconds:
        out["tokens_per_s/teacher"] = cells / max(seconds["teacher"], 1e-9)
    return out


def teacher_failed_N(scored: TeacherSignals, mask_N_T: torch.Tensor) -> torch.Tensor | None:
    """Which rollouts got no teacher scores `[N]` (a failed teacher call, in-process or served,
    NaNs its rows), or None when no teacher signal was asked for."""
    signals = [scored.teacher_logp_N_T, scored.teacher_topk_logp_N_T_K]
    failed = None
    for s in (s for s in signals if s is not None):
        nan_N_T = torch.isnan(s) if s.dim() == 2 else torch.isnan(s).any(-1)
        rows = (nan_N_T & (mask_N_T.to(s.device) > 0)).any(-1).cpu()
        failed = rows if failed is None else failed | rows
    return failed


def logp_mismatch(engine_logp_N_T, old_logp_N_T, mask_N_T) -> dict:
    """|engine log p - trainer log p| over response tokens (verl's rollout/trainer probability
    gap): sampler and trainer disagree when kernels, batch shapes or precision differ, which makes
    the samples slightly off-policy. None when the engine gives no log-probs."""
    if engine_logp_N_T is None:
        return {"rollout/logp_mismatch_mean": None, "rollout/logp_mismatch_max": None}
    where = mask_N_T > 0
    gap = (engine_logp_N_T.to(old_logp_N_T.device) - old_logp_N_T).abs()[where]
    if not gap.numel():
        return {"rollout/logp_mismatch_mean": 0.0, "rollout/logp_mismatch_max": 0.0}
    return {
        "rollout/logp_mismatch_mean": float(gap.mean()),
        "rollout/logp_mismatch_max": float(gap.max()),
    }


def rollout_records(r: StepRecord) -> list[dict]:
    ro, up = r.rollouts, r.update
    mask, teacher_logp = ro.batch.response_mask_N_T, r.scored.teacher_logp_N_T
    records = []
    for i, p in enumerate(ro.rows):
        t = int(mask[i].sum())
        reward = float(ro.rewards_N[i])
        rec = {
            "step": r.step,
            "prompt_id": p.id,
            "domain": p.domain,
            "group": int(ro.group_ids_N[i]),
            "completion": ro.texts[i],
            "reward": None if math.isnan(reward) else reward,
            "length": t,
            "level": p.meta.get("level"),
            "kept": bool(ro.keep_N[i]),
            "student_logp": [round(x, 4) for x in up.old_logp_N_T[i, :t].tolist()],
            "advantages": [round(x, 4) for x in up.advantages.values_N_T[i, :t].tolist()],
        }
        if teacher_logp is not None:
            rec["teacher_logp"] = [
                None if not math.isfinite(x) else round(x, 4) for x in teacher_logp[i, :t].tolist()
            ]
        records.append(rec)
    return records
