"""The training loop (METHOD 5), readable top to bottom.

Each step: sample B prompts (offline-balanced) -> G rollouts per prompt -> verify -> online
balancing mask -> routed teacher log-probs -> advantages (OPD, GRPO or both) -> margin calibration
-> PPO-clip loss -> one optimizer step per epoch -> log. GRPO differs from OPD only in the
advantage, so every method runs through this one loop.

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

from uniopd.algorithms import OBJECTIVES, online_balance, ppo_clip_loss
from uniopd.calibration import advantage_pairs, calibrate, order_metrics
from uniopd.data import PromptSampler
from uniopd.difficulty import offline_balance
from uniopd.engine import loading
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.rollout import generation_config, rollout_batch
from uniopd.engine.sequences import encode_prompts
from uniopd.engine.teachers import TeacherPool
from uniopd.evaluate import evaluate_as_configured
from uniopd.plan import Plan
from uniopd.run_dir import RunDir
from uniopd.tracking import make_tracker
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
    def __init__(self, plan: Plan, run_dir: RunDir, resume: bool = False):
        """`resume=True` continues `run_dir` from its newest usable checkpoint: weights,
        optimizer, scheduler, data position, RNG state and step, so the run ends where an
        uninterrupted one would."""
        cfg = self.cfg = plan.cfg
        self.plan, self.run_dir = plan, run_dir
        self.device = loading.pick_device(cfg.device)
        self.dtype = loading.pick_dtype(cfg.dtype, self.device)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

        checkpoint, state = run_dir.resumable_checkpoint() if resume else (None, None)
        # Missing built-in models build side by side; a student checkpoint of the user's own is
        # loaded first, so a broken one fails before minutes of building teachers.
        builtin_student = cfg.student.startswith("builtin:")
        if builtin_student:
            loading.build_missing([cfg.student, *self._teacher_refs()])
        self.tokenizer = loading.load_tokenizer(cfg.student)
        self.student = loading.load_model(str(checkpoint or cfg.student), self.device, self.dtype,
                                          trainable=True)
        if not builtin_student:
            loading.build_missing(self._teacher_refs())
        self.teachers = self._load_teachers() if cfg.method.uses_opd() else None
        self.verifiers = {d: get_verifier(name) for d, name in plan.verifier_for.items()}

        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=cfg.train.lr,
                                           betas=tuple(cfg.train.betas),
                                           weight_decay=cfg.train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.train.warmup_steps, cfg.train.steps, cfg.train.lr_schedule))
        train_set = offline_balance(self.student, self.tokenizer, plan.train, self.verifiers, cfg,
                                    run_dir, resume=resume)
        self.sampler = PromptSampler(train_set, seed=cfg.seed)
        self.train_domains = sorted({p.domain for p in plan.train})
        ids = encode_prompts(self.tokenizer, [p.prompt for p in plan.train], cfg.data.template)
        self.prompt_ids = {p.id: i for p, i in zip(plan.train, ids)}
        self.gen = generation_config(self.tokenizer, temperature=cfg.rollout.temperature,
                                     top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                                     max_new_tokens=cfg.rollout.max_new_tokens)
        self.step = 0
        self.on_eval = None  # optional hook(step, summary), e.g. a sweep's pruner; may raise to stop
        self.on_step = None  # optional hook(step, metrics), e.g. the world builder's progress
        if resume:
            self._load_state(state)
            run_dir.rewind_logs(self.step)
            run_dir.note_resume(self.step, checkpoint)
            log.info("resumed %s at step %d from %s", run_dir.path, self.step, checkpoint)
        else:
            run_dir.write_meta(self.device, {
                "n_train_prompts": len(plan.train), "n_train_items": len(train_set),
                "n_eval_prompts": len(plan.eval),
                "student_params": sum(p.numel() for p in self.student.parameters())})
        run_dir.mirror = make_tracker(cfg, run_dir)

    def _teacher_refs(self) -> list[str]:
        """The teachers this run loads: none without an OPD term, and only those some training
        prompt routes to."""
        if not self.cfg.method.uses_opd():
            return []
        asked = {p.domain for p in self.plan.train}
        return [ref for domain, ref in sorted(self.cfg.teachers.items()) if domain in asked]

    def _load_teachers(self) -> TeacherPool:
        models = {}
        asked = {p.domain for p in self.plan.train}  # a teacher no prompt routes to is not loaded
        for domain, ref in sorted(self.cfg.teachers.items()):
            if domain not in asked:
                continue
            loading.check_same_interface(self.tokenizer, loading.load_tokenizer(ref), ref, domain)
            if ref not in models:
                models[ref] = loading.load_model(ref, self.device, self.dtype, trainable=False)
        return TeacherPool(models, {d: r for d, r in self.cfg.teachers.items() if d in asked})

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
            if self.on_step is not None:
                self.on_step(self.step, metrics)
            if self.plan.eval and cfg.eval.every and self.step % cfg.eval.every == 0 \
                    and self.step < cfg.train.steps:
                last_eval = self.evaluate()
            if cfg.output.checkpoint_every and self.step % cfg.output.checkpoint_every == 0:
                self.checkpoint()
        bar.close()
        if self.plan.eval:
            last_eval = self.evaluate()
        self.checkpoint()
        self.run_dir.mirror.finish()
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
        keep = torch.ones(N, dtype=torch.bool)
        if cfg.balance.online.enabled:
            with timer("balance", dev):
                # seeded per step, like the rollouts, so a resumed run masks the same rollouts
                g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
                keep = online_balance(rewards, group_ids, cfg.balance.online.ratio,
                                      cfg.balance.online.scope, generator=g)

        teacher_logp = None
        if self.teachers is not None:
            with timer("teacher", dev):
                teacher_logp = self.teachers.logprobs(batch, domains, cfg.train.micro_batch_size)

        with timer("update", dev):
            stats = self._update(batch, rewards.to(dev), group_ids.to(dev), keep.to(dev), teacher_logp)
        if "calibrate" in stats:  # part of the update phase, reported on its own for the cost benchmark
            timer.seconds["calibrate"] = stats.pop("calibrate")
            timer.seconds["update"] -= timer.seconds["calibrate"]

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
        if cfg.balance.online.enabled:
            metrics["balance/kept"] = int(keep.sum())
            metrics["balance/masked"] = int((~keep).sum())
        if stats["opd_raw"] is not None:  # METHOD 4.3: order consistency before and after calibration
            r, gid = rewards.to(dev), group_ids.to(dev)
            metrics.update(order_metrics("before", stats["opd_raw"], stats["opd_mask"], r, gid))
            if stats["opd_cal"] is not None:
                metrics.update(order_metrics("after", stats["opd_cal"], stats["opd_mask"], r, gid))
                metrics.update(stats["calibration"])
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
                stats["advantages"], keep))
            if stats["opd_raw"] is not None and cfg.output.advantage_pairs:
                after = stats["opd_cal"] if stats["opd_cal"] is not None else stats["opd_raw"]
                self.run_dir.log_pairs(advantage_pairs(
                    self.step, cfg.output.advantage_pairs, rewards, group_ids, mask.cpu(),
                    stats["opd_raw"].cpu(), after.cpu(), batch.response_ids_N_T.cpu(), tok, rows, cfg.seed))
        return metrics

    def _advantages(self, old_logp, teacher_logp, mask, rewards, group_ids, keep, rows) -> dict:
        """The method's per-token advantages for `rows`: the coefficient-weighted sum of its
        registered objectives, the OPD term margin-calibrated when asked (which needs the whole
        batch), and the loss mask that every objective and the online balancing keep."""
        method = self.cfg.method
        signals = {"teacher_logp": teacher_logp, "student_logp": old_logp, "mask": mask,
                   "rewards": rewards, "group_ids": group_ids, "rows": rows,
                   "grpo_eps": method.grpo_eps}
        terms = [(name, coef) for name, coef, used in (
            ("opd", method.opd_coef, method.uses_opd()), ("grpo", method.grpo_coef, method.uses_grpo()))
            if used]
        out = {"opd_raw": None, "opd_cal": None, "opd_mask": None}
        adv, loss_mask = torch.zeros_like(mask), mask
        for name, coef in terms:
            a, m = OBJECTIVES[name](signals)
            if name == "opd":
                out["opd_raw"], out["opd_mask"] = a, m
                if self.cfg.calibration.enabled():
                    assert len(rows) == len(rewards), "margin calibration needs the whole batch"
                    start = time.perf_counter()
                    a, out["calibration"] = calibrate(a, m, rewards, group_ids, keep, self.cfg)
                    out["calibrate"] = time.perf_counter() - start
                    out["opd_cal"] = a
            adv, loss_mask = adv + coef * a, loss_mask * m
        loss_mask = loss_mask * keep[rows].to(mask.dtype)[:, None]  # balanced out: mask 0, slot kept
        out["adv"], out["mask"] = adv * loss_mask, loss_mask
        return out

    def _update(self, batch, rewards, group_ids, keep, teacher_logp) -> dict:
        cfg = self.cfg.train
        N = batch.input_ids_N_L.shape[0]
        mb = cfg.micro_batch_size or N
        chunks = [torch.arange(s, min(s + mb, N), device=self.device) for s in range(0, N, mb)]
        mask_all = batch.response_mask_N_T

        # Advantages come from pi_old. With one epoch and one chunk that is the training forward
        # pass itself (rho == 1, no extra pass). Several PPO epochs, or a calibration that needs
        # the whole batch while it is split into micro-batches, need pi_old first.
        old_logp, adv = None, None
        if cfg.epochs > 1 or (self.cfg.calibration.enabled() and len(chunks) > 1):
            with torch.no_grad():
                old_logp = torch.cat([response_logprobs(self.student, batch.rows(c)) for c in chunks])
            adv = self._advantages(old_logp, teacher_logp, mask_all, rewards, group_ids, keep,
                                   torch.arange(N, device=self.device))

        totals = {"loss": 0.0, "entropy": 0.0, "clip_frac": 0.0, "gap_masked_frac": 0.0}
        grad_norm = 0.0
        for epoch in range(cfg.epochs):
            parts = []
            for c in chunks:
                sub = batch.rows(c)
                logp, entropy = response_logprobs(self.student, sub, with_entropy=True)
                t_logp = None if teacher_logp is None else teacher_logp[c]
                if adv is None:
                    # one epoch: pi_old is this very forward pass, advantages are per chunk
                    part = self._advantages(logp.detach(), t_logp, sub.response_mask_N_T, rewards,
                                            group_ids, keep, c)
                    parts.append((logp.detach(), part))
                    old, a, m = logp.detach(), part["adv"], part["mask"]
                else:
                    old, a, m = old_logp[c], adv["adv"][c], adv["mask"][c]
                loss, st = ppo_clip_loss(logp, old, a, m, clip_low=cfg.clip_low,
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
            if adv is None:
                old_logp = torch.cat([o for o, _ in parts])
                adv = _concat([a for _, a in parts])
            if cfg.max_grad_norm > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.max_grad_norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        n_tok = float(mask_all.sum().clamp(min=1))
        out = {"loss": totals["loss"], "entropy": totals["entropy"] / n_tok,
               "clip_frac": totals["clip_frac"], "gap_masked_frac": totals["gap_masked_frac"],
               "grad_norm": grad_norm, "old_logp": old_logp, "advantages": adv["adv"],
               **{k: adv[k] for k in ("opd_raw", "opd_cal", "opd_mask", "calibration", "calibrate")
                  if k in adv}}
        if teacher_logp is not None:
            finite = torch.isfinite(teacher_logp) & (mask_all > 0)
            out["logp_gap"] = float((teacher_logp - old_logp)[finite].mean()) if finite.any() else 0.0
        return out

    def _rollout_records(self, rows, group_ids, texts, rewards, batch, old_logp, teacher_logp, adv, keep):
        mask = batch.response_mask_N_T
        records = []
        for i, p in enumerate(rows):
            t = int(mask[i].sum())
            rec = {"step": self.step, "prompt_id": p.id, "domain": p.domain, "group": int(group_ids[i]),
                   "completion": texts[i], "reward": None if math.isnan(rewards[i]) else float(rewards[i]),
                   "length": t, "level": p.meta.get("level"), "kept": bool(keep[i]),
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
        if self.on_eval is not None:
            self.on_eval(self.step, summary)
        return summary

    def _load_state(self, state: dict) -> None:
        self.step = state["step"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        torch.random.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])

    def checkpoint(self):
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "sampler": self.sampler.state_dict(),
                 "rng": {"torch": torch.random.get_rng_state(), "python": random.getstate(),
                         "numpy": np.random.get_state()}}
        return self.run_dir.save_checkpoint(self.step, self.student, self.tokenizer, state,
                                            keep=self.cfg.output.keep_checkpoints)


def _concat(parts: list[dict]) -> dict:
    """Per-chunk advantage dicts -> one for the whole batch (calibration only runs unchunked)."""
    out = dict(parts[0])
    for k in ("adv", "mask", "opd_raw", "opd_cal", "opd_mask"):
        if parts[0][k] is not None:
            out[k] = torch.cat([p[k] for p in parts])
    return out
