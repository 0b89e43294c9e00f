"""The preference objectives in the loop (docs/method.md 9): the pair gradient the update takes is
the pair loss's exactly, whatever the micro-batching and over several epochs; the pairs come from
the student's own graded groups; short real runs train; every experiment file under
experiments/preference validates and runs; a config the objectives cannot run is refused."""

import copy
import json
from pathlib import Path

import pytest
import torch

from uniopd.config import ConfigError, ExperimentConfig, load_experiment
from uniopd.engine import loading
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.sequences import pack
from uniopd.launch.start import start_run
from uniopd.loop.pairs import quality_scores, rollout_pairs
from uniopd.loop.runner import prepare
from uniopd.loop.scoring import TeacherSignals
from uniopd.loop.update import PolicyUpdate
from uniopd.objectives.preference import PairSignals
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan

PREFERENCE = Path(__file__).resolve().parents[1] / "experiments" / "preference"
# the text-domain files; the describe files (SENTINEL's task) need the visual models, built on
# first use: tests/test_describe_run.py runs their pipeline on a tiny image-text checkpoint, and
# tests/test_experiment_files.py validates every file
FILES = sorted(p for p in PREFERENCE.glob("*.yaml") if not p.name.startswith("_"))
FILES = [p for p in FILES if "describe" not in p.name]


def test_pairs_are_correct_against_incorrect_within_a_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, float("nan"), 0.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    usable = torch.tensor([True, True, True, True, True, True, True, False])
    p = rollout_pairs(rewards, groups, usable, rewards)
    # group 1 is all correct, group 2 has an ungraded row and a balanced-out one: no pair
    assert sorted(zip(p.chosen_P.tolist(), p.rejected_P.tolist())) == [
        (0, 1),
        (0, 2),
        (3, 1),
        (3, 2),
    ]
    d = rollout_pairs(rewards, groups, usable, rewards, pairing="disjoint")
    assert len(d) == 2 and len(set(d.chosen_P.tolist())) == len(set(d.rejected_P.tolist())) == 2


def test_teacher_scores_order_the_pairs_and_fail_closed():
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    teacher = torch.tensor([[-1.0, -3.0], [-0.5, float("nan")], [-4.0, -4.0], [float("nan"), -1]])
    s = quality_scores("teacher", rewards, mask, teacher)
    assert s[:3].tolist() == [-2.0, -0.5, -4.0] and torch.isnan(s[3])  # NaN past the end is fine
    both = quality_scores("both", rewards, mask, teacher)
    assert both[:3].tolist() == [-1.0, 0.5, -4.0]
    p = rollout_pairs(rewards, torch.zeros(4), torch.ones(4, dtype=torch.bool), s, max_per_group=1)
    assert (p.chosen_P.tolist(), p.rejected_P.tolist()) == ([1], [2])  # the widest margin


def _cfg(student, method, epochs=1, micro=3):
    return ExperimentConfig.model_validate(
        {
            "name": "pair-step",
            "student": str(student),
            "teachers": {"math": str(student)},
            "data": {"train": ["builtin:math/train"]},
            "rollout": {"group_size": 4},
            "method": method,
            "train": {"warmup_steps": 0, "epochs": epochs, "micro_batch_size": micro},
        }
    )


@pytest.mark.parametrize(
    "name, epochs, micro",
    [
        pytest.param("dpo", 1, 3, marks=pytest.mark.slow),  # about 10 s with its checkpoint
        pytest.param("omni_dpo", 2, 5, marks=pytest.mark.slow),
    ],
)
def test_the_update_takes_the_pair_loss_gradient_exactly(make_checkpoint, name, epochs, micro):
    """SGD with lr 1 on the update's micro-batched coefficients against plain autograd through
    the whole batch's pair loss, epoch by epoch: the same weights."""
    path = str(make_checkpoint(11))
    model = loading.load_model(path, torch.device("cpu"), torch.float32, True)
    tok = loading.load_tokenizer(path)
    g = torch.Generator().manual_seed(0)
    V, n = model.config.vocab_size, 8
    prompts = [torch.randint(5, V, (3 + i % 2,), generator=g).tolist() for i in range(n)]
    responses = [torch.randint(5, V, (2 + 3 * (i % 3),), generator=g).tolist() for i in range(n)]
    batch = pack(prompts, responses, tok.pad_token_id)
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    groups, keep = torch.arange(n) // 4, torch.ones(n, dtype=torch.bool)
    mask = batch.response_mask_N_T
    with torch.no_grad():
        ref = response_logprobs(model, batch) - 0.3 * mask * (torch.arange(n) % 3)[:, None]
    reference = copy.deepcopy(model)
    cfg = _cfg(path, {"name": name}, epochs, micro)
    cfg.train.max_grad_norm = 0.0
    ((_, _, objective),) = cfg.method.objectives()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    update = PolicyUpdate(model, opt, cfg.method.objectives(), cfg.train)
    result = update(
        batch, TeacherSignals(["math"] * n, reference_logp_N_T=ref), rewards, groups, keep, rewards
    )
    pairs = rollout_pairs(rewards, groups, keep, rewards)
    assert len(pairs) == 4 + 3  # 2 correct x 2 incorrect, then 1 x 3
    for epoch in range(epochs):
        logp = response_logprobs(reference, batch)
        loss = objective.pair_loss(PairSignals(logp, ref, mask, pairs)).mean()
        if epoch == 0:
            assert (
                abs(result.loss - float(loss)) < 1e-6 and result.direct_losses[name] == result.loss
            )
        reference.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in reference.parameters():
                p -= p.grad
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert result.pair_metrics[f"pairs/{name}/count"] == 7


def _train(cfg) -> list[dict]:
    trainer = prepare(make_plan(cfg), RunDir.create(cfg.output.root, cfg.name))
    before = [p.detach().clone() for p in trainer.student.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.student.parameters()))
    lines = (trainer.run_dir.path / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    "method",
    [
        pytest.param({"name": "dpo"}, id="dpo", marks=pytest.mark.slow),  # (the coin world)
        pytest.param(
            {"name": "omni_dpo", "options": {"omni_dpo": {"score": "both"}}},
            id="omni_dpo",
            marks=pytest.mark.slow,
        ),
        pytest.param({"name": "cdpo"}, id="cdpo", marks=pytest.mark.slow),
    ],
)
def test_a_short_run_trains_on_its_own_pairs(coin, tiny_experiment, tmp_path, method):
    cfg = ExperimentConfig.model_validate(
        tiny_experiment(
            coin["student"],
            coin["teacher"],
            [str(coin["data"])],
            tmp_path / "runs",
            seed=0,
            method=method,
            rollout={"group_size": 4, "prompts_per_batch": 3},
            train={"lr": 1e-3},
            eval=None,
            tracking={"wandb": "disabled"},
        )
    )
    metrics = _train(cfg)
    name = method["name"]
    assert all(m[f"pairs/{name}/count"] > 0 for m in metrics)
    # the first step's policy is the reference: every margin 0, DPO's loss log 2
    if name != "omni_dpo":
        assert abs(metrics[0][f"loss/{name}"] - 0.6931) < 1e-3
    assert metrics[1][f"pairs/{name}/margin"] != 0.0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_preference_file_validates(path):
    cfg = load_experiment(path)
    assert cfg.method.objectives()[0][2].kind == "pair"
    assert cfg.method.parts()[0] in {"dpo", "omni_dpo"}


@pytest.mark.world  # the shipped tiny world, 2 short steps per file
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_preference_file_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    cfg = load_experiment(
        path,
        [
            "train.steps=2",
            "train.epochs=1",
            "rollout.prompts_per_batch=2",
            "rollout.group_size=4",
            "eval.before=false",
            "eval.after=false",
            "output.progress=false",
            f"output.root={tmp_path / 'runs'}",
        ],
    )
    run, _ = start_run(cfg)  # (installs the shipped world into the home first)
    metrics = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    name = cfg.method.parts()[0]
    assert len(metrics) == 2 and any(m[f"pairs/{name}/count"] > 0 for m in metrics)
    assert all(f"loss/{name}" in m for m in metrics)


def _refusal(tmp_path, text: str, base: str = "dpo.yaml") -> str:
    path = tmp_path / "bad.yaml"
    path.write_text("# bad.yaml\nbase: " + str(PREFERENCE / base) + "\n" + text)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    return str(err.value)


def test_a_preference_objective_without_pairs_or_reference_is_refused(tmp_path):
    msg = _refusal(tmp_path, "rollout: {group_size: 1}\n")
    assert "objective dpo" in msg and "rollout.group_size = 1 gives no pairs" in msg
    msg = _refusal(tmp_path, "method: {name: dpo, options: {dpo: {reference: ''}}}\n")
    assert "method.options.dpo" in msg and "reference" in msg
    msg = _refusal(tmp_path, "method: {options: {omni_dpo: {score: judge}}}\n", "omni_dpo.yaml")
    assert "method.options.omni_dpo" in msg and "score" in msg
