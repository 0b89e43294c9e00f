"""From a checked plan to a ready trainer: the stages before the first step, in order.

    seeds -> the run's models (uniopd.setup.parts) -> offline difficulty balancing of the training set
    (uniopd.loop.difficulty, METHOD 3.1) -> the trainer

Model building is not a stage here: `build`, when given, builds missing `builtin:` models
(uniopd.launch.start passes the tiny world's builder; the world builder itself needs none).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from uniopd.engine.distributed import Dist
from uniopd.engine.vision import encode_inputs
from uniopd.loop.difficulty import offline_balance
from uniopd.loop.trainer import Trainer
from uniopd.run_dir import RunDir
from uniopd.seeds import seed_everything
from uniopd.setup.parts import load_parts
from uniopd.setup.plan import Plan, PlanError

log = logging.getLogger(__name__)


def prepare(
    plan: Plan, run_dir: RunDir, *, resume: bool = False, build=None, dist: Dist | None = None
) -> Trainer:
    """`resume=True` continues `run_dir` from its newest usable checkpoint. With several
    processes (`dist`), the first builds missing models while the others wait; the difficulty
    estimate of offline balancing is shared out over all of them, and they all train on the first
    one's training set."""
    cfg = plan.cfg
    cfg.world.select()  # `builtin:` models from this run's world (a group plans several first)
    dist = dist or Dist()
    seed_everything(cfg.seed)
    checkpoint, state = run_dir.resumable_checkpoint() if resume else (None, None)

    def build_once(refs) -> None:
        if build is not None and dist.is_main:
            build(refs)
        dist.barrier()

    parts = load_parts(plan, checkpoint, build=build_once if build else None, dist=dist)
    plan = drop_long_prompts(plan, parts)
    with parts.precision.autocast():
        train_set = offline_balance(
            parts.student,
            parts.tokenizer,
            plan.train,
            parts.verifiers,
            cfg,
            run_dir,
            resume=resume,
            write=dist.is_main,
            processor=parts.processor,
            dist=dist,
        )
    # every process balanced the same counts with the same seed; the first's list is the one
    # written to difficulty/items.json, so it is the one all train on
    train_set = dist.broadcast_object(train_set)
    return Trainer(plan, run_dir, parts, train_set, state, checkpoint)


def drop_long_prompts(plan: Plan, parts) -> Plan:
    """The plan without the training prompts over `data.max_prompt_tokens` (as the student sees
    them): known only once the tokenizer is loaded, so here rather than in the plan."""
    budget = plan.cfg.data.max_prompt_tokens
    if budget is None:
        return plan
    # an image-text student's prompts are counted with their image tokens
    ids, _ = encode_inputs(parts.tokenizer, parts.processor, plan.train, parts.prompt_format)
    kept = [p for p, i in zip(plan.train, ids) if len(i) <= budget]
    if not kept:
        raise PlanError(
            f"data.max_prompt_tokens = {budget}: every one of the {len(plan.train)} training "
            "prompts is longer, rendered in the student's chat template"
        )
    if len(kept) < len(plan.train):
        log.warning(
            "data.max_prompt_tokens = %d: dropped %d of %d training prompts as longer",
            budget,
            len(plan.train) - len(kept),
            len(plan.train),
        )
    return replace(plan, train=kept)
