"""From a checked plan to a ready trainer: the stages before the first step, in order.

    seeds -> the run's models (uniopd.parts) -> offline difficulty balancing of the training set
    (uniopd.difficulty, METHOD 3.1) -> the trainer

Model building is not a stage here: `build`, when given, builds missing `builtin:` models
(uniopd.launch passes the tiny world's builder; the world builder itself needs none).
"""

from __future__ import annotations

from uniopd.difficulty import offline_balance
from uniopd.parts import load_parts
from uniopd.plan import Plan
from uniopd.run_dir import RunDir
from uniopd.seeds import seed_everything
from uniopd.trainer import Trainer


def prepare(plan: Plan, run_dir: RunDir, *, resume: bool = False, build=None) -> Trainer:
    """`resume=True` continues `run_dir` from its newest usable checkpoint."""
    cfg = plan.cfg
    seed_everything(cfg.seed)
    checkpoint, state = run_dir.resumable_checkpoint() if resume else (None, None)
    parts = load_parts(plan, checkpoint, build=build)
    train_set = offline_balance(
        parts.student, parts.tokenizer, plan.train, parts.verifiers, cfg, run_dir, resume=resume
    )
    return Trainer(plan, run_dir, parts, train_set, state, checkpoint)
