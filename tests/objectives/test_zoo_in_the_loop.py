"""Every objective of the zoo through the real loop on 2-layer checkpoints: it trains, the loop
computes only the teacher signals it asks for, and the identities of METHOD 7 hold end to end."""

import json

import pytest
import torch

from uniopd.config import ConfigError, ExperimentConfig, load_experiment
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import PlanError, make_plan


def _config(tiny_experiment, student, teacher, tmp_path, method, teachers=None, run="zoo"):
    return ExperimentConfig.model_validate(
        tiny_experiment(
            student,
            teachers or {"math": teacher, "code": teacher},
            {"train": ["builtin:math/train", "builtin:code/train"], "limit": 16},
            tmp_path / "runs",
            name=run,
            seed=3,
            method=method,
            rollout={"prompts_per_batch": 4, "max_new_tokens": 10},
            train={"lr": 1e-3, "micro_batch_size": 3},
            eval=None,
            tracking={"wandb": "disabled"},
        )
    )


def _train(cfg, hook=None):
    """(metrics, teacher forward batch sizes, the trainer) of a short run."""
    trainer = prepare(make_plan(cfg), RunDir.create(cfg.output.root, cfg.name))
    calls = []
    if trainer.parts.teachers is not None:
        for model in trainer.parts.teachers.models_by_ref.values():
            model.register_forward_hook(
                lambda m, args, kw, out: calls.append(kw["input_ids"]), with_kwargs=True
            )
    before = [p.detach().clone() for p in trainer.student.parameters()]
    trainer.train()
    lines = (trainer.run_dir.path / "metrics.jsonl").read_text().splitlines()
    moved = any(not torch.equal(a, b) for a, b in zip(before, trainer.student.parameters()))
    return [json.loads(x) for x in lines], calls, moved


@pytest.mark.parametrize(
    "method, teachers, signal",
    [
        ({"name": "jsd", "options": {"jsd": {"beta": 0.5}}}, None, "loss/jsd"),
        ({"name": "forward_kl"}, None, "loss/forward_kl"),
        ({"name": "reverse_kl"}, None, "loss/reverse_kl"),
        ({"name": "topk", "options": {"topk": {"k": 8, "sampled_tail": True}}}, None, "loss/topk"),
        (
            {"name": "opsd"},
            {"math": "self+privileged", "code": "self+privileged"},
            "order/consistency_before",
        ),
        ({"name": "exopd", "options": {"exopd": {"lam": 1.25}}}, None, "order/consistency_before"),
    ],
)
def test_each_objective_trains_through_the_loop(
    tiny_experiment, make_checkpoint, tmp_path, method, teachers, signal
):
    s, t = make_checkpoint(11), make_checkpoint(12)
    cfg = _config(tiny_experiment, s, t, tmp_path, method, teachers=teachers)
    metrics, calls, moved = _train(cfg)
    assert moved and all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics)
    assert signal in metrics[-1]
    assert calls, "the teacher was never asked"


@pytest.mark.parametrize("micro, logits_micro, biggest", [(3, 16, 3), (0, 5, 5)])
def test_full_teacher_logits_are_only_ever_held_for_one_micro_batch(
    tiny_experiment, make_checkpoint, tmp_path, micro, logits_micro, biggest
):
    s, t = make_checkpoint(11), make_checkpoint(12)
    cfg = _config(tiny_experiment, s, t, tmp_path, {"name": "jsd"}, run="jsd")
    train = {
        **cfg.train.model_dump(),
        "micro_batch_size": micro,
        "logits_micro_batch_size": logits_micro,
    }
    cfg = ExperimentConfig.model_validate({**cfg.model_dump(), "train": train})
    _, calls, _ = _train(cfg)
    # 8 rollouts per batch: the teacher never sees more rows than one micro-batch, even when the
    # update itself would take the whole batch at once (micro_batch_size 0)
    assert max(ids.shape[0] for ids in calls) == biggest
    assert len(calls) == 2 * -(-8 // biggest)  # 2 steps, every micro-batch once
    # no sampled-token pass: jsd asks for full logits only, so no whole-batch teacher call
    lines = (tmp_path / "runs" / "jsd" / "metrics.jsonl").read_text().splitlines()
    assert "teacher_student_logp_gap" not in json.loads(lines[0])


def test_grpo_asks_no_teacher_and_loads_none(tiny_experiment, make_checkpoint, tmp_path):
    s, t = make_checkpoint(11), make_checkpoint(12)
    cfg = _config(tiny_experiment, s, t, tmp_path, {"name": "grpo"})
    trainer = prepare(make_plan(cfg), RunDir.create(cfg.output.root, cfg.name))
    assert trainer.parts.teachers is None and trainer.parts.reference is None


def test_exopd_at_lambda_one_is_opd_exactly(tiny_experiment, make_checkpoint, tmp_path):
    s, t = make_checkpoint(11), make_checkpoint(12)
    opd, _, _ = _train(_config(tiny_experiment, s, t, tmp_path, {"name": "opd"}, run="opd"))
    exopd = {"name": "exopd", "options": {"exopd": {"lam": 1.0}}}
    ex, _, _ = _train(_config(tiny_experiment, s, t, tmp_path, exopd, run="ex"))
    assert [m["loss"] for m in ex] == [m["loss"] for m in opd]


def test_topk_with_the_whole_vocabulary_is_the_full_reverse_kl(
    tiny_experiment, make_checkpoint, tmp_path
):
    s, t = make_checkpoint(11), make_checkpoint(12)
    vocab = json.loads((s / "config.json").read_text())["vocab_size"]
    full, _, _ = _train(_config(tiny_experiment, s, t, tmp_path, {"name": "reverse_kl"}, run="rkl"))
    topk, _, _ = _train(
        _config(
            tiny_experiment,
            s,
            t,
            tmp_path,
            {"name": "topk", "options": {"topk": {"k": vocab, "clamp": None}}},
            run="topk",
        )
    )
    assert [m["loss"] for m in topk] == pytest.approx([m["loss"] for m in full], rel=1e-5, abs=1e-6)


def test_opsd_teacher_sees_the_reference_solution_and_the_student_does_not(
    tiny_experiment, make_checkpoint, tmp_path
):
    cfg = _config(
        tiny_experiment,
        make_checkpoint(11),
        None,
        tmp_path,
        {"name": "opsd"},
        teachers={"math": "self+privileged", "code": "self+privileged"},
        run="opsd",
    )
    trainer = prepare(make_plan(cfg), RunDir.create(cfg.output.root, cfg.name))
    seen = []
    teacher = trainer.parts.teachers.models_by_ref["self+privileged"]
    teacher.register_forward_hook(
        lambda m, a, kw, o: seen.append(kw["input_ids"]), with_kwargs=True
    )
    trainer.train()
    tok = trainer.tokenizer
    assert all("A reference solution" in tok.decode(ids[0]) for ids in seen)
    rollout = json.loads(
        (trainer.run_dir.path / "rollouts" / "step_000001.jsonl").read_text().splitlines()[0]
    )
    assert "reference solution" not in rollout["completion"]
    assert teacher is not trainer.student and not any(p.requires_grad for p in teacher.parameters())


def test_unmeetable_needs_and_missing_references_are_errors_at_load(
    tiny_experiment, make_checkpoint, tmp_path
):
    s = make_checkpoint(11)
    served = {"math": "http://127.0.0.1:9/v1"}
    with pytest.raises(Exception, match=r"needs teacher_topk from its teacher, but teachers.math"):
        _config(tiny_experiment, s, None, tmp_path, {"name": "topk"}, teachers=served)
    with pytest.raises(Exception, match=r"objective opsd .* name self\+privileged"):
        _config(tiny_experiment, s, s, tmp_path, {"name": "opsd"})
    rows = tmp_path / "bare.jsonl"
    rows.write_text(
        json.dumps({"id": "q1", "domain": "math", "prompt": "1+1?", "answer": "2"}) + "\n"
    )
    privileged = {"math": "self+privileged"}
    cfg = _config(tiny_experiment, s, None, tmp_path, {"name": "opsd"}, teachers=privileged)
    cfg = cfg.model_validate({**cfg.model_dump(), "data": {"train": [str(rows)]}})
    with pytest.raises(
        PlanError, match=r"teachers.math = self\+privileged: .* 1 math training rows have none"
    ):
        make_plan(cfg)


def test_objective_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(
        "name: x\nstudent: s\nteachers: {math: t}\ndata: {train: [builtin:math/train]}\n"
        "method: {name: topk, options: {topk: {k: 0}}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(err.value).startswith(f"{path}: method.options.topk.k: objective topk: k: ")


def test_an_ema_teacher_follows_the_student_and_is_checkpointed(
    tiny_experiment, make_checkpoint, tmp_path
):
    ref = "self@ema=0.5+privileged"
    teachers = {"math": ref, "code": ref}
    cfg = _config(
        tiny_experiment, make_checkpoint(11), None, tmp_path, {"name": "opsd"}, teachers=teachers
    )
    trainer = prepare(make_plan(cfg), RunDir.create(cfg.output.root, cfg.name))
    teacher = trainer.parts.teacher_model(ref)
    start = [p.detach().clone() for p in teacher.parameters()]
    trainer.train()
    student = list(trainer.student.parameters())
    for t0, t, s in zip(start, teacher.parameters(), student):
        # after each step: teacher <- 0.5 teacher + 0.5 student, so it moved, but not onto the student
        assert not torch.equal(t0, t) or torch.equal(t0, s)
    assert any(not torch.equal(t, s) for t, s in zip(teacher.parameters(), student))
    state = torch.load(trainer.run_dir.latest_checkpoint() / "trainer_state.pt", weights_only=False)
    saved = state["ema_teachers"][ref]
    assert all(torch.equal(saved[k], v) for k, v in teacher.state_dict().items())
