"""train.old_logp: rollout takes pi_old from the rollout engine's log-probs: one student forward
pass fewer per micro-batch and step (with a single micro-batch the trainer already reads pi_old
off the first epoch's pass), the same training to within the rollout/trainer mismatch, which
stays logged."""

import json

import pytest
from test_trainer import _config

from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan


def _run(cfg, tmp_path, name):
    cfg = cfg.model_copy(update={"name": name})
    run = RunDir.create(cfg.output.root, cfg.name)
    trainer = prepare(make_plan(cfg), run)
    calls = {"n": 0}
    handle = trainer.student.register_forward_hook(
        lambda *_: calls.__setitem__("n", calls["n"] + 1)
    )
    trainer.train()
    handle.remove()
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], calls["n"]


def test_pi_old_from_the_engine_saves_a_pass_and_trains_alike(make_checkpoint, tmp_path):
    base = _config(make_checkpoint(11), make_checkpoint(12), tmp_path)
    base = base.model_copy(
        update={
            "eval": base.eval.model_copy(update={"every": 0}),
            "data": base.data.model_copy(update={"eval": []}),
        }
    )
    # two micro-batches of the 8 rows: with one, the trainer reads pi_old off the first epoch's
    # own forward pass (tests/test_update_pi_old.py) and the engine's saves nothing more
    base = base.model_copy(update={"train": base.train.model_copy(update={"micro_batch_size": 4})})
    trainer_m, trainer_calls = _run(base, tmp_path, "old-trainer")
    train = base.train.model_copy(update={"old_logp": "rollout"})
    rollout_m, rollout_calls = _run(
        base.model_copy(update={"train": train}), tmp_path, "old-rollout"
    )
    # the student's forward passes: one sampling pass per decoded token in both, then per step
    # one pi_old pass fewer for each of the 2 micro-batches
    assert trainer_calls - rollout_calls == 2 * base.train.steps
    for a, b in zip(trainer_m, rollout_m):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
        assert b["reward"] == a["reward"]
        # the mismatch is measured against the trainer's own first-epoch pass in both modes
        assert b["rollout/logp_mismatch_max"] < 1e-4
        assert b["rollout/logp_mismatch_mean"] == pytest.approx(
            a["rollout/logp_mismatch_mean"], abs=1e-6
        )
