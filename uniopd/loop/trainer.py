"""The training loop (METHOD 5), readable top to bottom.

Each step: sample B prompts (offline-balanced) -> G rollouts per prompt -> verify -> online
balancing -> the teacher phase (what the objectives need) -> the policy update (advantages,
margin calibration, PPO-clip plus direct losses) -> log. Every method runs through this one loop;
methods differ only in their objectives (uniopd/objectives) and strategies (uniopd/strategies).

The trainer gets its parts ready-made (uniopd/loop/runner.py: models, the offline-balanced training
set), so nothing here resolves a model reference or samples a difficulty estimate. The rollout
phase (engine, sampling, grading, online balancing) is uniopd/loop/rollout_phase.py; what a checkpoint
holds besides the weights is uniopd/loop/train_state.py.

    uniopd run experiments/quickstart.yaml
"""

from __future__ import annotations

import logging
import time

from tqdm.auto import tqdm

from uniopd.data import PromptSampler
from uniopd.data.sampler import steps_for_data_epochs
from uniopd.engine.fsdp import full_optimizer_state, full_state_dict, is_sharded
from uniopd.engine.teachers import ema_update
from uniopd.loop import preemption
from uniopd.loop.evaluate import evaluate_as_configured
from uniopd.loop.optim import PhaseTimer, make_optimizer
from uniopd.loop.order_metrics import advantage_pairs
from uniopd.loop.pair_batches import PairBatches
from uniopd.loop.records import StepRecord, rollout_records, step_metrics
from uniopd.loop.rollout_phase import RolloutPhase
from uniopd.loop.scoring import Scorer
from uniopd.loop.sentinel import SentinelPairs, sentinel_iterations
from uniopd.loop.sharding import gather_record
from uniopd.loop.train_state import collect_state, restore_state
from uniopd.loop.update import PolicyUpdate
from uniopd.run_dir import RunDir
from uniopd.setup.parts import Parts
from uniopd.setup.plan import Plan
from uniopd.tracking.mirrors import make_tracker
from uniopd.world.paths import world_record

log = logging.getLogger(__name__)


class Trainer:
    def __init__(
        self,
        plan: Plan,
        run_dir: RunDir,
        parts: Parts,
        train_set: list,
        state: dict | None = None,
        checkpoint=None,
    ):
        """`state` (with the `checkpoint` it came from) continues a run where it stopped: optimizer,
        scheduler, data position, RNG state and step, so it ends where an uninterrupted one would."""
        cfg = self.cfg = plan.cfg
        self.plan, self.run_dir, self.parts = plan, run_dir, parts
        self.student, self.tokenizer = parts.student, parts.tokenizer
        self.dist, self.precision = parts.dist, parts.precision
        self.writes = self.dist.is_main  # one process writes the run directory
        self.sharded = is_sharded(self.student)  # then every process runs every forward
        self.objectives = cfg.method.objectives()
        self.scorer = Scorer(parts, cfg.method.needs(), cfg)
        if cfg.train.data_epochs is not None:  # the step count is the data's: known only now
            cfg.train.steps = steps_for_data_epochs(
                cfg.train.data_epochs, len(train_set), cfg.rollout.prompts_per_batch
            )
        self.optimizer, self.scheduler = make_optimizer(self.student, cfg.train)
        self.policy_update = PolicyUpdate(
            self.student,
            self.optimizer,
            self.objectives,
            cfg.train,
            calibrator=cfg.calibration.calibrator(),
            precision=self.precision,
            dist=self.dist,
        )
        self.sampler = PromptSampler(train_set, seed=cfg.seed)
        self.train_domains = sorted({p.domain for p in plan.train})
        self.rollouts = RolloutPhase(cfg, parts, plan.train)
        self.engine = self.rollouts.engine
        # offline preference pairs (data.pairs): the step's rows come from the file, not sampled
        self.pair_file = PairBatches(cfg, self.rollouts) if cfg.data.pairs is not None else None
        # SENTINEL's sentence pairs (cdpo with pairs: sentinel), bootstrapped from the student
        iterations = sentinel_iterations(cfg)
        self.sentinel = SentinelPairs(iterations, self.rollouts) if iterations else None
        self.step = 0
        self.on_eval = (
            None  # optional hook(step, summary), e.g. a sweep's pruner; may raise to stop
        )
        self.on_step = None  # optional hook(step, metrics), e.g. the world builder's progress
        if state is not None:
            self._load_state(state)
            if self.writes:
                run_dir.rewind_logs(self.step)
                run_dir.note_resume(self.step, checkpoint)
            log.info("resumed %s at step %d from %s", run_dir.path, self.step, checkpoint)
        elif self.writes:
            run_dir.write_meta(
                parts.device,
                {
                    "n_train_prompts": len(plan.train),
                    "n_train_items": len(train_set),
                    "steps": cfg.train.steps,
                    "n_eval_prompts": len(plan.eval),
                    "student_params": sum(p.numel() for p in self.student.parameters()),
                    "precision": self.precision.mode,
                    "processes": self.dist.world,
                    "rollout_engine": cfg.rollout.engine,
                    "rollout_sampling": self.rollouts.sampling.as_dict(),
                    "world": world_record(cfg),
                    # how each domain is graded, e.g. the code sandbox's isolation: a run graded
                    # without namespaces says so here, not only in a warning on the console
                    "graders": {
                        d: getattr(v, "describe", lambda v=v: type(v).__name__)()
                        for d, v in parts.verifiers.items()
                    },
                },
            )
            # a few held-out pictures per domain, for the report's sample rollouts
            run_dir.save_images([p for p in plan.eval if p.images])
        if self.writes:
            run_dir.mirror = make_tracker(cfg, run_dir)

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict:
        cfg = self.cfg
        evals = bool(self.plan.eval)
        last_eval = self.evaluate() if self.step == 0 and evals and cfg.eval.before else None
        bar = tqdm(
            total=cfg.train.steps,
            initial=self.step,
            desc=f"{cfg.method.name} {cfg.name}",
            disable=not cfg.output.progress or not self.writes,
            dynamic_ncols=True,
        )
        while self.step < cfg.train.steps:
            self.step += 1
            record = gather_record(self.train_step(), self.tokenizer.pad_token_id, self.dist)
            metrics = step_metrics(
                record, self.train_domains, cfg.train.epochs, cfg.balance.online.enabled
            )
            if self.writes:
                self.run_dir.log_metrics(metrics)
                self._log_samples(record)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", reward=f"{metrics['reward']:.2f}")
            if self.on_step is not None:
                self.on_step(self.step, metrics)
            if (
                self.plan.eval
                and cfg.eval.every
                and self.step % cfg.eval.every == 0
                and self.step < cfg.train.steps
            ):
                last_eval = self.evaluate()
            every = cfg.output.checkpoint_every
            saved = bool(every) and self.step % every == 0
            if saved:
                self.checkpoint()
            # a scheduler's SIGTERM: stop after this step, every process at the same one
            stop = preemption.agreed(self.dist) if self.step < cfg.train.steps else None
            if stop:
                bar.close()
                raise self._preempted(stop, saved)
        bar.close()
        if evals and cfg.eval.after:
            last_eval = self.evaluate()
        self.checkpoint()
        self.run_dir.mirror.finish()
        return last_eval or {}

    def train_step(self) -> StepRecord:
        cfg, timer = self.cfg, PhaseTimer(self.parts.device)
        problems = self.dist.shard(self.sampler.next_batch(cfg.rollout.prompts_per_batch))
        rollouts = (self.pair_file or self.sentinel or self.rollouts)(problems, self.step, timer)
        self.engine.sleep()  # (a vLLM engine frees its memory for the teachers and the update)
        with timer("teacher"), self.precision.autocast():
            scored = self.scorer.score(rollouts.batch, rollouts.rows)
        correct = rollouts.rewards_N.float().clone()
        if cfg.balance.online.enabled and not cfg.balance.online.in_margin_stats:
            correct[~rollouts.keep_N] = float("nan")  # balanced-out rollouts leave the statistics
        with timer("update"):
            dev = self.parts.device
            result = self.policy_update(
                rollouts.batch,
                scored,
                rollouts.rewards_N.to(dev),
                rollouts.group_ids_N.to(dev),
                rollouts.keep_N.to(dev),
                correct.to(dev),
                self.scorer.teacher_logits(rollouts.batch, scored),
                rollout_logp_N_T=rollouts.engine_logp_N_T,
                file_score_N=rollouts.file_score_N,
                pair_weight_N_T=rollouts.pair_weight_N_T,
            )
            self.scheduler.step()
            for ref, decay in self.parts.ema_teachers.items():
                ema_update(self.parts.teacher_model(ref), self.student, decay)
            self.engine.update_weights(self.student)  # the next rollouts sample the new policy
        if self.parts.teachers is None and self.parts.reference is None:
            timer.seconds.pop("teacher")  # no teacher phase for this method (GRPO)
        if result.advantages.calibration:  # part of the update, reported on its own
            timer.seconds["calibrate"] = result.advantages.calibrate_seconds
            timer.seconds["update"] -= timer.seconds["calibrate"]
        return StepRecord(
            self.step,
            rollouts,
            scored,
            result,
            timer.seconds,
            float(self.scheduler.get_last_lr()[0]),
        )

    def _log_samples(self, r: StepRecord) -> None:
        every = self.cfg.output.log_rollouts_every
        if not every or self.step % every:
            return
        self.run_dir.log_rollouts(self.step, rollout_records(r))
        adv, ro = r.update.advantages, r.rollouts
        if (
            adv.distill_raw_N_T is not None
            and adv.distill_cal_N_T is not None
            and self.cfg.output.advantage_pairs
        ):
            rewards = ro.rewards_N  # rollouts with no return to compare are in no pair
            if adv.scored_N is not None:
                rewards = rewards.masked_fill(~adv.scored_N.cpu(), float("nan"))
            self.run_dir.log_pairs(
                advantage_pairs(
                    self.step,
                    self.cfg.output.advantage_pairs,
                    rewards,
                    ro.group_ids_N,
                    ro.batch.response_mask_N_T.cpu(),
                    adv.distill_raw_N_T.cpu(),
                    adv.distill_cal_N_T.cpu(),
                    ro.batch.response_ids_N_T.cpu(),
                    self.tokenizer,
                    ro.rows,
                    self.cfg.seed,
                )
            )

    # ------------------------------------------------------------------ eval and checkpoints
    def evaluate(self) -> dict:
        """Held-out evaluation: every process samples and grades its share of the rows (with a
        sharded student, all of them in lock-step) and the first one logs the gathered result."""
        t0 = time.perf_counter()
        self.engine.wake()
        with self.precision.autocast():
            summary, samples = evaluate_as_configured(
                self.student,
                self.tokenizer,
                self.plan.eval,
                self.parts.verifiers,
                self.cfg,
                self.engine,
                self.parts.processor,
                self.dist,
            )
        if not self.writes:  # the other processes: their share done, nothing to log
            self.dist.barrier()
            return {}
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        self.run_dir.log_eval(self.step, summary, samples)
        accs = " ".join(f"{d}={v['acc']:.3f}" for d, v in summary.items() if isinstance(v, dict))
        log.info("eval step %d: %s", self.step, accs)
        if self.on_eval is not None:
            self.on_eval(self.step, summary)
        self.dist.barrier()
        return summary

    def _load_state(self, state: dict) -> None:
        self.step = restore_state(
            state,
            self.student,
            self.optimizer,
            self.scheduler,
            self.precision,
            self.sampler,
            self._ema_models(),
            self.sharded,
        )

    def _preempted(self, signal_name: str, saved: bool) -> preemption.Preempted:
        """A checkpoint of this step (unless one was just written) and the mirrors closed: what
        `--resume` needs to end where an uninterrupted run would."""
        path = self.run_dir.newest_checkpoint() if saved else self.checkpoint()
        if self.writes:
            self.run_dir.mirror.finish()
        where = path if self.writes else None
        return preemption.Preempted(self.step, where, self.run_dir.path, signal_name)

    def _ema_models(self) -> dict:
        return {ref: self.parts.teacher_model(ref) for ref in self.parts.ema_teachers}

    def checkpoint(self):
        """Written by the first process; every process holds the same weights and state (a
        sharded student's whole weights and optimizer state are gathered first: all call it)."""
        weights, optimizer = None, self.optimizer.state_dict()
        if self.sharded:
            weights = full_state_dict(self.student)
            optimizer = full_optimizer_state(self.student, self.optimizer)
        if not self.writes:
            self.dist.barrier()
            return None
        state = collect_state(
            self.step, optimizer, self.scheduler, self.precision, self.sampler, self._ema_models()
        )
        with preemption.checkpointing():  # a second signal now exits at once
            path = self.run_dir.save_checkpoint(
                self.step,
                self.student,
                self.parts.processor or self.tokenizer,  # an image-text student: its processor
                state,
                keep=self.cfg.output.keep_checkpoints,
                weights=weights,
            )
        self.dist.barrier()
        return path
