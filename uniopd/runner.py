"""From a checked plan to a ready trainer: the stages before the first step, in order.

    seeds -> the run's models (uniopd.parts) -> offline difficulty balancing of the training set
    (uniopd.difficulty, METHOD 3.1) -> the trainer

Model building is not a stage here: `build`, when given, builds missing `builtin:` models
(uniopd.launch passes the tiny world's builder; the world builder itself needs none).
"""

from __future__ import annotations

from uniopd.difficulty import offline_balance
from uniopd.engine.distributed import Dist
from uniopd.engine.fsdp import is_sharded
from uniopd.parts import load_parts
from uniopd.plan import Plan
from uniopd.run_dir import RunDir
from uniopd.seeds import seed_everything
from uniopd.trainer import Trainer


def prepare(
    plan: Plan, run_dir: RunDir, *, resume: bool = False, build=None, dist: Dist | None = None
) -> Trainer:
    """`resume=True` continues `run_dir` from its newest usable checkpoint. With several
    processes (`dist`), the first builds missing models and balances the training set while the
    others wait, and they all get its result."""
    cfg = plan.cfg
    dist = dist or Dist()
    seed_everything(cfg.seed)
    checkpoint, state = run_dir.resumable_checkpoint() if resume else (None, None)

    def build_once(refs) -> None:
        if build is not None and dist.is_main:
            build(refs)
        dist.barrier()

    parts = load_parts(plan, checkpoint, build=build_once if build else None, dist=dist)
    train_set = None
    # a sharded student samples only in lock-step with every process: they all estimate
    lockstep = is_sharded(parts.student)
    if dist.is_main or lockstep:
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
            )
    train_set = dist.broadcast_object(train_set)
    return Trainer(plan, run_dir, parts, train_set, state, checkpoint)
