"""Sampling is exactly what the file says: the logits processors that `generate` actually builds,
recorded during a real run's difficulty estimate, rollouts and held-out evaluation. Before
2026-11-29 a top-k of 0 ("off") passed top_k=None and transformers filled in its default of 50,
so each phase below found a TopKLogitsWarper(50) where the file said off."""

import pytest
from transformers import GenerationMixin
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from uniopd.config import ExperimentConfig
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan

SAMPLING_WARPERS = (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)


@pytest.fixture
def used(monkeypatch):
    """Every LogitsProcessorList `generate` built, in call order."""
    seen = []
    original = GenerationMixin._get_logits_processor

    def recording(self, *args, **kwargs):
        processors = original(self, *args, **kwargs)
        seen.append(list(processors))
        return processors

    monkeypatch.setattr(GenerationMixin, "_get_logits_processor", recording)
    return seen


def _warpers(seen) -> set:
    """(kind, value) of every sampling warper in the recorded lists."""
    out = set()
    for processors in seen:
        for p in processors:
            if isinstance(p, TopKLogitsWarper):
                out.add(("top_k", p.top_k))
            elif isinstance(p, TopPLogitsWarper):
                out.add(("top_p", round(p.top_p, 6)))
            elif isinstance(p, TemperatureLogitsWarper):
                out.add(("temperature", round(p.temperature, 6)))
    return out


def _config(tiny_experiment, student, teacher, tmp_path, rollout, eval_, offline):
    return ExperimentConfig.model_validate(
        tiny_experiment(
            student,
            {"math": teacher, "code": teacher},
            {"train": ["builtin:math/train"], "eval": ["builtin:math/test"], "limit": 6},
            tmp_path / "runs",
            name="sampling",
            seed=3,
            method={"name": "opd"},
            balance={"offline": {"mode": "balance", "n_samples": 2, **offline}},
            rollout={"max_new_tokens": 4, **rollout},
            train={"steps": 1, "lr": 1e-3},
            eval=eval_,
        )
    )


@pytest.mark.parametrize(
    "rollout, eval_, offline, expected",
    [
        # every setting off: no sampling warper at all in any phase
        (
            {"temperature": 1.0, "top_p": 1.0, "top_k": 0},
            {"temperature": 1.0, "top_p": 1.0, "top_k": 0},
            {"temperature": 1.0, "top_p": 1.0, "top_k": 0},
            (set(), set(), set()),
        ),
        # each phase exactly its own settings
        (
            {"temperature": 0.7, "top_p": 0.9, "top_k": 7},
            {"temperature": 0.5, "top_p": 1.0, "top_k": 3},
            {"temperature": 1.0, "top_p": 0.95, "top_k": 50},  # METHOD 3.1's estimate
            (
                {("top_k", 50), ("top_p", 0.95)},
                {("temperature", 0.7), ("top_p", 0.9), ("top_k", 7)},
                {("temperature", 0.5), ("top_k", 3)},
            ),
        ),
    ],
    ids=["all-off", "explicit"],
)
def test_each_phase_samples_with_exactly_its_settings(
    tiny_experiment, used, make_checkpoint, tmp_path, monkeypatch, rollout, eval_, offline, expected
):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))  # no cached difficulty estimate
    s, t = make_checkpoint(51), make_checkpoint(52)
    cfg = _config(tiny_experiment, s, t, tmp_path, rollout, eval_, offline)
    run = RunDir.create(cfg.output.root, cfg.name)
    trainer = prepare(make_plan(cfg), run)
    difficulty = _warpers(used)
    assert used, "the difficulty estimate sampled nothing"
    used.clear()
    trainer.train_step()
    rollouts = _warpers(used)
    assert used, "the rollouts sampled nothing"
    used.clear()
    trainer.evaluate()
    assert used, "the evaluation sampled nothing"
    assert (difficulty, rollouts, _warpers(used)) == expected
