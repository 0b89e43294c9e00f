"""A C-DPO run on SENTINEL's pairs through the real loop (docs/method.md 9.3): a tiny image-text
student describes the describe task's pictures, the pairs are bootstrapped from its own
continuations each step, and every evaluation records CHAIR_i / CHAIR_s of its descriptions."""

import json

import pytest

from uniopd.config import ExperimentConfig, save_resolved
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan


@pytest.mark.slow
def test_a_cdpo_describe_run_records_chair_in_its_evaluations(
    tiny_experiment, make_image_text_checkpoint, tmp_path
):
    student = make_image_text_checkpoint(5, from_text=1)
    cfg = tiny_experiment(
        student,
        {},
        {"train": ["builtin:describe/train"], "eval": ["builtin:describe/test"], "limit": 8},
        tmp_path / "runs",
        name="describe",
        method={"name": "cdpo", "options": {"cdpo": {"pairs": "sentinel", "iterations": 2}}},
        rollout={"group_size": 2, "prompts_per_batch": 2, "max_new_tokens": 8},
        eval={"every": 1, "n_samples": 1, "max_prompts_per_domain": 3},
        tracking={"wandb": "disabled"},
    )
    cfg = ExperimentConfig.model_validate(cfg)
    run = RunDir.create(cfg.output.root, cfg.name)
    save_resolved(cfg, run.path / "config.yaml")
    prepare(make_plan(cfg), run).train()

    evals = [json.loads(line) for line in (run.path / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 1, 2]
    for e in evals:
        for key in ("chair_i", "chair_s", "recall", "count_accuracy"):
            assert 0.0 <= e["describe"][key] <= 1.0
    steps = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 2 and all("pairs/cdpo/count" in s for s in steps)
