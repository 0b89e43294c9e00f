"""The rollout phase of a training step (METHOD 5, steps 1-3): G samples for each of the step's
prompts from the rollout engine, graded by the domains' verifiers, then online balancing's keep
mask when the run asks for it.

Seeded per step, so a resumed run samples and masks the same rollouts as an uninterrupted one.
With several processes each samples whole groups of its share of the B prompts.
"""

from __future__ import annotations

import logging

import torch

from uniopd.engine.rollout import EngineOptions, make_engine, rollout_batch
from uniopd.engine.sampling import resolve_sampling
from uniopd.engine.vision import encode_inputs, image_token_ids
from uniopd.loop.optim import PhaseTimer
from uniopd.loop.records import RolloutBatch
from uniopd.loop.sharding import balance_globally
from uniopd.seeds import RANK_OFFSET, step_seed
from uniopd.setup.parts import Parts
from uniopd.tasks.problem import Problem
from uniopd.verifiers import grade_by_domain

log = logging.getLogger(__name__)


class RolloutPhase:
    """Owns the rollout engine and the resolved sampling settings for the whole run."""

    def __init__(self, cfg, parts: Parts, train: list[Problem]):
        self.cfg, self.parts, self.dist = cfg, parts, parts.dist
        tok, ro = parts.tokenizer, cfg.rollout
        ids, vision = encode_inputs(tok, parts.processor, train, parts.prompt_format)
        self.prompt_ids = {p.id: i for p, i in zip(train, ids)}
        # an image-text student's pixel inputs per problem (None: a text student)
        self.vision = None if vision is None else {p.id: v for p, v in zip(train, vision)}
        self.sampling = resolve_sampling(
            tok,
            parts.student,
            max_new_tokens=ro.max_new_tokens,
            temperature=ro.temperature,
            top_p=ro.top_p,
            top_k=ro.top_k,
            stop_token_ids=ro.stop_token_ids,
            banned_token_ids=image_token_ids(parts.processor) if parts.processor else (),
        )
        log.info("rollout engine %s, sampling %s", ro.engine, self.sampling.as_dict())
        self.engine = make_engine(
            ro.engine,
            parts.student,
            tok,
            EngineOptions(
                max_batch_rows=ro.max_batch_rows,
                max_batch_tokens=ro.max_batch_tokens,
                kv_cache_tokens=ro.kv_cache_tokens,
                kv_cache_memory_fraction=ro.kv_cache_memory_fraction,
                gpu_memory_utilization=ro.gpu_memory_utilization,
                processes=ro.processes,
                seed=cfg.seed,
                dtype=parts.precision.compute_dtype or parts.precision.student_dtype,
                dist=parts.dist,
            ),
        )
        self._warned_old_logp = False

    def __call__(self, problems: list[Problem], step: int, timer: PhaseTimer) -> RolloutBatch:
        """This process's `problems`, G rollouts each, graded and (when asked) balanced."""
        cfg, tok, dist = self.cfg, self.parts.tokenizer, self.dist
        G = cfg.rollout.group_size
        rows = [p for p in problems for _ in range(G)]
        with timer("rollout"), self.parts.precision.autocast():
            torch.manual_seed(step_seed(cfg.seed, step, dist.rank * RANK_OFFSET))
            self.engine.wake()
            batch, engine_logp = rollout_batch(
                self.engine,
                [self.prompt_ids[p.id] for p in problems],
                G,
                self.sampling,
                None if self.vision is None else [self.vision[p.id] for p in problems],
            )
            batch = batch.to(self.parts.device)
        texts = tok.batch_decode(
            batch.response_ids_N_T * batch.response_mask_N_T.long(), skip_special_tokens=True
        )
        with timer("verify"):
            scores = grade_by_domain(self.parts.verifiers, rows, texts)
            rewards = torch.tensor([float("nan") if s is None else s for s in scores])
        # group ids are global: process r holds groups r * B/P .. (r + 1) * B/P - 1
        first = dist.rank * len(problems)
        group_ids = torch.arange(first, first + len(problems)).repeat_interleave(G)
        keep = torch.ones(len(rows), dtype=torch.bool)
        if cfg.balance.online.enabled:
            with timer("balance"):
                g = torch.Generator().manual_seed(step_seed(cfg.seed, step))
                balancer = cfg.balance.online.balancer()
                keep = balance_globally(balancer, rewards, group_ids, g, dist)
        if engine_logp is None and cfg.train.old_logp == "rollout" and not self._warned_old_logp:
            self._warned_old_logp = True
            log.warning(
                "train.old_logp = rollout, but rollout.engine %s gives no log-probs for these "
                "sampling settings: pi_old comes from the trainer's forward pass instead",
                cfg.rollout.engine,
            )
        return RolloutBatch(problems, rows, batch, texts, rewards, group_ids, keep, engine_logp)
