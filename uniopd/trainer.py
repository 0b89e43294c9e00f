"""The training loop (METHOD 5), readable top to bottom.

Each step: sample B prompts -> G rollouts per prompt -> verify -> routed teacher log-probs ->
advantages (OPD, GRPO or both) -> PPO-clip loss -> one optimizer step per epoch -> log.
GRPO differs from OPD only in the advantage, so both run through this one loop.

    uniopd run experiments/quickstart.yaml
"""

from __future__ import annotations

import logging
import math
import random
import time
from contextlib import contextmanager

import numpy as np
import torch
from tqdm.auto import tqdm

from uniopd.algorithms import OBJECTIVES, ppo_clip_loss
from uniopd.data import PromptSampler
from uniopd.engine import loading
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.rollout import generation_config, rollout_batch
from uniopd.engine.sequences import encode_prompts
from uniopd.engine.teachers import TeacherPool
from uniopd.evaluate import evaluate_as_configured
from uniopd.plan import Plan
from uniopd.run_dir import RunDir
from uniopd.verifiers import get_verifier, grade_by_domain

log = logging.getLogger(__name__)


class PhaseTimer:
    """Seconds spent per phase of a step, for the per-phase timing line in metrics.jsonl."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str, device: torch.device):
        start = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def lr_lambda(warmup: int, total: int, schedule: str):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        return 1.0
    return f


class Trainer:
    def __init__(self, plan: Plan, run_dir: RunDir):
        cfg = self.cfg = plan.cfg
        self.plan, self.run_dir = plan, run_dir
        self.device = loading.pick_device(cfg.device)
        self.dtype = loading.pick_dtype(cfg.dtype, self.device)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

        self.tokenizer = loading.load_tokenizer(cfg.student)
        self.student = loading.load_model(cfg.student, self.device, self.dtype, trainable=True)
        self.teachers = self._load_teachers() if cfg.method.uses_opd() else None
        self.verifiers = {d: get_verifier(name) for d, name in plan.verifier_for.items()}

        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=cfg.train.lr,
                                           betas=tuple(cfg.train.betas),
                                           weight_decay=cfg.train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.train.warmup_steps, cfg.train.steps, cfg.train.lr_schedule))
        self.sampler = PromptSampler(plan.train, seed=cfg.seed)
        self.train_domains = sorted({p.domain for p in plan.train})
        ids = encode_prompts(self.tokenizer, [p.prompt for p in plan.train], cfg.data.template)
        self.prompt_ids = {p.id: i for p, i in zip(plan.train, ids)}
        self.gen = generation_config(self.tokenizer, temperature=cfg.rollout.temperature,
                                     top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                                     max_new_tokens=cfg.rollout.max_new_tokens)
        self.step = 0
        run_dir.write_meta(self.device, {"n_train_prompts": len(plan.train),
                                         "n_eval_prompts": len(plan.eval),
                                         "student_params": sum(p.numel() for p in self.student.parameters())})

    def _load_teachers(self) -> TeacherPool:
        models = {}
        for domain, ref in sorted(self.cfg.teachers.items()):
            loading.check_same_interface(self.tokenizer, loading.load_tokenizer(ref), ref, domain)
            if ref not in models:
                models[ref] = loading.load_model(ref, self.device, self.dtype, trainable=False)
        return TeacherPool(models, dict(self.cfg.teachers))

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict:
        cfg = self.cfg
        last_eval = self.evaluate() if self.step == 0 and self.plan.eval else None
        bar = tqdm(total=cfg.train.steps, initial=self.step, desc=f"{cfg.method.name} {cfg.name}",
                   disable=not cfg.output.progress, dynamic_ncols=True)
        while self.step < cfg.train.steps:
            self.step += 1
            metrics = self.train_step()
            self.run_dir.log_metrics(metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", reward=f"{metrics['reward']:.2f}")
            if self.plan.eval and cfg.eval.every and self.step % cfg.eval.every == 0 \
                    and self.step < cfg.train.steps:
                last_eval = self.evaluate()
            if cfg.output.checkpoint_every and self.step % cfg.output.checkpoint_every == 0:
                self.checkpoint()
        bar.close()
        if self.plan.eval:
            last_eval = self.evaluate()
        self.checkpoint()
        return last_eval or {}

    def train_step(self) -> dict:
        cfg, tok, dev = self.cfg, self.tokenizer, self.device
        timer = PhaseTimer()
        problems = self.sampler.next_batch(cfg.rollout.prompts_per_batch)
        G = cfg.rollout.group_size
        rows = [p for p in problems for _ in range(G)]
        domains = [p.domain for p in rows]
        N = len(rows)

        with timer("rollout", dev):
            # seeded per step so a resumed run samples the same rollouts as an uninterrupted one
            torch.manual_seed(cfg.seed * 1_000_003 + self.step)
            batch = rollout_batch(self.student, tok, [self.prompt_ids[p.id] for p in problems], G,
                                  self.gen).to(dev)
        mask = batch.response_mask_N_T
        texts = tok.batch_decode(batch.response_ids_N_T * mask.long(), skip_special_tokens=True)

        with timer("verify", dev):
            rewards = torch.tensor([float("nan") if s is None else s
                                    for s in grade_by_domain(self.verifiers, rows, texts)])
        group_ids = torch.arange(len(problems)).repeat_interleave(G)

        teacher_logp = None
        if self.teachers is not None:
            with timer("teacher", dev):
                teacher_logp = self.teachers.logprobs(batch, domains, cfg.train.micro_batch_size)

        with timer("update", dev):
            stats = self._update(batch, rewards.to(dev), group_ids.to(dev), teacher_logp)

        n_tokens = float(mask.sum())
        graded = ~torch.isnan(rewards)
        metrics = {
            "step": self.step,
            "loss": stats["loss"],
            "reward": float(torch.nan_to_num(rewards, nan=0.0).mean()),
            "ungraded_frac": float((~graded).float().mean()),
            "response_length": n_tokens / N,
            "entropy": stats["entropy"],
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": stats["grad_norm"],
            "clip_frac": stats["clip_frac"],
            "gap_masked_frac": stats["gap_masked_frac"],
        }
        for domain in self.train_domains:  # every domain every step (None if not sampled): one schema
            sel = torch.tensor([d == domain for d in domains])
            metrics[f"accuracy/{domain}"] = (float(torch.nan_to_num(rewards[sel], nan=0.0).mean())
                                             if sel.any() else None)
        if teacher_logp is not None:
            metrics["teacher_student_logp_gap"] = stats["logp_gap"]
            metrics["reverse_kl"] = -stats["logp_gap"]
        metrics.update({f"time/{k}": round(v, 4) for k, v in timer.seconds.items()})
        metrics["time/step"] = round(sum(timer.seconds.values()), 4)
        metrics["tokens_per_s/rollout"] = n_tokens / max(timer.seconds["rollout"], 1e-9)
        metrics["tokens_per_s/update"] = cfg.train.epochs * batch.input_ids_N_L.numel() / max(timer.seconds["update"], 1e-9)
        if teacher_logp is not None:
            metrics["tokens_per_s/teacher"] = batch.input_ids_N_L.numel() / max(timer.seconds["teacher"], 1e-9)

        every = cfg.output.log_rollouts_every
        if every and self.step % every == 0:
            self.run_dir.log_rollouts(self.step, self._rollout_records(
                rows, group_ids, texts, rewards, batch, stats["old_logp"], teacher_logp,
                stats["advantages"]))
        return metrics

    def _advantages(self, old_logp, teacher_logp, mask, rewards, group_ids, rows):
        """The method's per-token advantages `[N, T]`: the coefficient-weighted sum of its
        registered objectives; the loss mask is what every objective keeps."""
        method = self.cfg.method
        signals = {"teacher_logp": teacher_logp, "student_logp": old_logp, "mask": mask,
                   "rewards": rewards, "group_ids": group_ids, "rows": rows,
                   "grpo_eps": method.grpo_eps}
        terms = [(name, coef) for name, coef, used in (
            ("opd", method.opd_coef, method.uses_opd()), ("grpo", method.grpo_coef, method.uses_grpo()))
            if used]
        adv, keep = torch.zeros_like(mask), mask
        for name, coef in terms:
            a, m = OBJECTIVES[name](signals)
            adv, keep = adv + coef * a, keep * m
        return adv * keep, keep

    def _update(self, batch, rewards, group_ids, teacher_logp) -> dict:
        cfg = self.cfg.train
        N = batch.input_ids_N_L.shape[0]
        mb = cfg.micro_batch_size or N
        chunks = [torch.arange(s, min(s + mb, N), device=self.device) for s in range(0, N, mb)]
        mask_all = batch.response_mask_N_T

        old_logp = None
        if cfg.epochs > 1:  # several PPO epochs need pi_old fixed before the first update
            with torch.no_grad():
                old_logp = torch.cat([response_logprobs(self.student, batch.rows(c)) for c in chunks])

        adv_all = loss_mask = None
        totals = {"loss": 0.0, "entropy": 0.0, "clip_frac": 0.0, "gap_masked_frac": 0.0}
        grad_norm = 0.0
        for epoch in range(cfg.epochs):
            parts_old, parts_adv, parts_mask = [], [], []
            for c in chunks:
                sub = batch.rows(c)
                logp, entropy = response_logprobs(self.student, sub, with_entropy=True)
                old = logp.detach() if old_logp is None else old_logp[c]
                t_logp = None if teacher_logp is None else teacher_logp[c]
                if adv_all is None:
                    # with one epoch, pi_old is this very forward pass (rho == 1), so no extra pass
                    adv, m = self._advantages(old, t_logp, sub.response_mask_N_T, rewards, group_ids, c)
                    parts_old.append(old), parts_adv.append(adv), parts_mask.append(m)
                else:
                    adv, m = adv_all[c], loss_mask[c]
                loss, st = ppo_clip_loss(logp, old, adv, m, clip_low=cfg.clip_low,
                                         clip_high=cfg.clip_high, teacher_logp=t_logp,
                                         gap_threshold=cfg.logp_gap_mask, num_rollouts=N)
                loss.backward()
                w = len(c) / N
                # the clip only acts from the second epoch on (rho == 1 in the first): average all
                totals["clip_frac"] += st["clip_frac"] * w / cfg.epochs
                if epoch == 0:
                    totals["loss"] += loss.item()
                    totals["entropy"] += float((entropy * sub.response_mask_N_T).sum())
                    totals["gap_masked_frac"] += st["gap_masked_frac"] * w
            if adv_all is None:
                adv_all, loss_mask = torch.cat(parts_adv), torch.cat(parts_mask)
                old_logp = torch.cat(parts_old) if old_logp is None else old_logp
            if cfg.max_grad_norm > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.max_grad_norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        n_tok = float(mask_all.sum().clamp(min=1))
        out = {"loss": totals["loss"], "entropy": totals["entropy"] / n_tok,
               "clip_frac": totals["clip_frac"], "gap_masked_frac": totals["gap_masked_frac"],
               "grad_norm": grad_norm, "old_logp": old_logp, "advantages": adv_all}
        if teacher_logp is not None:
            finite = torch.isfinite(teacher_logp) & (mask_all > 0)
            out["logp_gap"] = float((teacher_logp - old_logp)[finite].mean()) if finite.any() else 0.0
        return out

    def _rollout_records(self, rows, group_ids, texts, rewards, batch, old_logp, teacher_logp, adv):
        mask = batch.response_mask_N_T
        records = []
        for i, p in enumerate(rows):
            t = int(mask[i].sum())
            rec = {"step": self.step, "prompt_id": p.id, "domain": p.domain, "group": int(group_ids[i]),
                   "completion": texts[i], "reward": None if math.isnan(rewards[i]) else float(rewards[i]),
                   "length": t, "level": p.meta.get("level"),
                   "student_logp": [round(x, 4) for x in old_logp[i, :t].tolist()],
                   "advantages": [round(x, 4) for x in adv[i, :t].tolist()]}
            if teacher_logp is not None:
                rec["teacher_logp"] = [None if not math.isfinite(x) else round(x, 4)
                                       for x in teacher_logp[i, :t].tolist()]
            records.append(rec)
        return records

    # ------------------------------------------------------------------ eval and checkpoints
    def evaluate(self) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        summary, samples = evaluate_as_configured(self.student, self.tokenizer, self.plan.eval,
                                                  self.verifiers, cfg)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        self.run_dir.log_eval(self.step, summary, samples)
        accs = " ".join(f"{d}={v['acc']:.3f}" for d, v in summary.items() if isinstance(v, dict))
        log.info("eval step %d: %s", self.step, accs)
        return summary

    def checkpoint(self):
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "sampler": self.sampler.state_dict(),
                 "rng": {"torch": torch.random.get_rng_state(), "python": random.getstate(),
                         "numpy": np.random.get_state()}}
        return self.run_dir.save_checkpoint(self.step, self.student, self.tokenizer, state,
                                            keep=self.cfg.output.keep_checkpoints)
