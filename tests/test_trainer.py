"""The loop end to end on 2-layer checkpoints: recorded losses, run directory contents, GRPO."""

import json
from pathlib import Path

import pytest

from uniopd.config import ExperimentConfig
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan

RECORDED = Path(__file__).parent / "recorded" / "opd_2layer_losses.json"


def _config(student, teacher, tmp_path, **method):
    return ExperimentConfig.model_validate(
        {
            "name": "tiny",
            "seed": 7,
            "device": "cpu",
            "student": str(student),
            "teachers": {"math": str(teacher), "code": str(teacher)},
            "data": {
                "train": ["builtin:math/train", "builtin:code/train"],
                "eval": ["builtin:math/test", "builtin:code/test"],
                "limit": 40,
            },
            "method": method or {"name": "opd"},
            "rollout": {"group_size": 2, "prompts_per_batch": 4, "max_new_tokens": 12},
            "train": {"steps": 3, "lr": 1e-3, "warmup_steps": 1},
            "eval": {"every": 2, "n_samples": 2, "pass_k": [1, 2], "max_prompts_per_domain": 3},
            "output": {"root": str(tmp_path / "runs"), "progress": False},
        }
    )


def _run(cfg):
    run = RunDir.create(cfg.output.root, cfg.name)
    final = prepare(make_plan(cfg), run).train()
    metrics = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    return run, final, metrics


def test_short_run_reproduces_recorded_losses(make_checkpoint, tmp_path):
    cfg = _config(make_checkpoint(11), make_checkpoint(12), tmp_path)
    _, _, metrics = _run(cfg)
    losses = [m["loss"] for m in metrics]
    if not RECORDED.exists():  # recording is a deliberate act, never a silent pass
        RECORDED.parent.mkdir(exist_ok=True)
        RECORDED.write_text(json.dumps({"losses": losses}, indent=1))
        pytest.fail(f"recorded losses written to {RECORDED}; commit them and re-run")
    assert losses == pytest.approx(json.loads(RECORDED.read_text())["losses"], rel=1e-4, abs=1e-6)


def test_run_directory_is_complete(make_checkpoint, tmp_path):
    cfg = _config(make_checkpoint(11), make_checkpoint(12), tmp_path)
    run, final, metrics = _run(cfg)
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for key in (
        "loss",
        "reward",
        "accuracy/math",
        "accuracy/code",
        "response_length",
        "entropy",
        "teacher_student_logp_gap",
        "time/rollout",
        "time/verify",
        "time/teacher",
        "time/update",
        "tokens_per_s/rollout",
    ):
        assert key in metrics[0], key
    evals = [json.loads(line) for line in (run.path / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2, 3]
    assert set(final) >= {"math", "code"} and "pass@2" in final["math"]
    rec = json.loads((run.path / "rollouts" / "step_000001.jsonl").read_text().splitlines()[0])
    assert {
        "prompt_id",
        "domain",
        "completion",
        "reward",
        "student_logp",
        "teacher_logp",
        "advantages",
    } <= set(rec)
    assert (
        len(rec["student_logp"])
        == len(rec["teacher_logp"])
        == len(rec["advantages"])
        == rec["length"]
    )
    # OPD advantage is exactly teacher minus student log-prob on every kept token
    for a, t, s in zip(rec["advantages"], rec["teacher_logp"], rec["student_logp"]):
        assert a == pytest.approx(t - s, abs=2e-4)
    assert (run.latest_checkpoint() / "model.safetensors").exists()
    assert json.loads((run.path / "meta.json").read_text())["git"] is not None


def test_student_equal_teacher_gives_zero_loss_and_no_update(make_checkpoint, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    same = make_checkpoint(11)
    cfg = _config(same, same, tmp_path)
    cfg.train.weight_decay = 0.0
    run, _, metrics = _run(cfg)
    assert all(m["loss"] == 0.0 and m["grad_norm"] == 0.0 for m in metrics)
    before = AutoModelForCausalLM.from_pretrained(same).state_dict()
    after = AutoModelForCausalLM.from_pretrained(run.latest_checkpoint()).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_grpo_runs_through_the_same_loop_without_teachers(make_checkpoint, tmp_path):
    cfg = _config(make_checkpoint(11), make_checkpoint(12), tmp_path, name="grpo")
    cfg.teachers = {}
    _, _, metrics = _run(cfg)
    assert len(metrics) == 3 and "time/teacher" not in metrics[0]
