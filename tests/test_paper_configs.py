"""The released configurations (experiments/paper/) validate without their models, against small
data files laid out as the released data sets are, and say what the release says."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from uniopd.commands.cli import main
from uniopd.config import load_experiment

PAPER = Path(__file__).resolve().parents[1] / "experiments" / "paper"
FILES = sorted(p for p in PAPER.rglob("*.yaml") if not p.name.startswith("_"))


def _parquet(folder: Path, columns: dict) -> None:
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.table(columns), folder / "data" / "train-00000-of-00001.parquet")


@pytest.fixture
def released_data(tmp_path, monkeypatch):
    """data/ as the files expect it, with the released data sets' column names and a few rows."""
    from huggingface_hub import constants

    data = tmp_path / "data"
    _parquet(
        data / "deepmath-103k",
        {
            "question": ["What is 2 + 3?", "Find x if 2x = 8."],
            "final_answer": ["5", "4"],
            "difficulty": [1.0, 2.0],
            "topic": ["arithmetic", "algebra"],
        },
    )
    stdio = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})
    calls = json.dumps({"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]})
    _parquet(
        data / "eurus-2-rl-code",
        {
            "data_source": ["codecontests", "leetcode"],
            "prompt": [
                [
                    {"role": "system", "content": "Solve it."},
                    {"role": "user", "content": "Read a and b; print a + b."},
                ],
                [{"role": "user", "content": "Write add(a, b)."}],
            ],
            "ability": ["code", "code"],
            "reward_model": [
                {"style": "rule", "ground_truth": stdio},
                {"style": "rule", "ground_truth": calls},
            ],
        },
    )
    # G-OPD's balanced files, as the release trains on them: prompt and label, rows repeated
    math_rows = [{"prompt": "What is 2 + 3? Please reason step by step.", "label": "5"}] * 2
    code_rows = [{"prompt": "Read a and b; print a + b.", "label": stdio}]
    for name, rows in (("DeepMath-103K", math_rows), ("Eurus", code_rows)):
        (data / "g-opd" / name).mkdir(parents=True)
        path = data / "g-opd" / name / "offline_data_balanced.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows))
    for name in ("aime24", "aime25"):
        rows = [{"problem": "What is 1 + 1?", "answer": "2", "id": 0}]
        (data / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    return tmp_path


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PAPER)))
def test_released_file_validates_without_models(path, released_data, capsys):
    assert main(["validate", "--no-models", "--nproc", "8", str(path)]) == 0
    assert f"ok  {path}" in capsys.readouterr().out


def test_without_the_flag_the_missing_student_is_named(released_data, capsys):
    path = PAPER / "multi_teacher" / "uniopd.yaml"
    assert main(["validate", "--nproc", "8", str(path)]) == 2
    assert "student.model" in capsys.readouterr().err


def test_the_files_hold_the_released_hyperparameters():
    for path in FILES:
        cfg = load_experiment(path)
        r, t = cfg.rollout, cfg.train
        assert (r.prompts_per_batch, r.group_size) == (64, 16), path
        assert (r.temperature, r.top_p, r.top_k, r.max_new_tokens) == (1.0, 1.0, 0, 16384), path
        assert (t.data_epochs, t.epochs, t.lr, t.lr_schedule, t.warmup_steps) == (
            10,
            1,
            1e-6,
            "constant",
            5,
        ), path
        assert (t.betas, t.weight_decay, t.clip_low, t.clip_high, t.logp_gap_mask) == (
            (0.9, 0.98),
            0.1,
            0.2,
            0.28,
            10.0,
        ), path
        assert cfg.data.chat_template_kwargs == {"enable_thinking": False}, path
        assert cfg.data.max_prompt_tokens == 4096, path
        # the release sends the balanced files' prompts as given, and evaluates nothing in OPD
        assert cfg.data.prompt_templates == {}, path
        assert [s.source.split("/")[-1] for s in cfg.data.train] == 2 * [
            "offline_data_balanced.jsonl"
        ], path
        assert (cfg.eval.every, cfg.eval.before, cfg.eval.after) == (0, False, False), path
        assert cfg.precision == "bf16-mixed", path
        if "uniopd" in path.name:
            on, cal = cfg.balance.online, cfg.calibration
            assert cfg.balance.offline.mode == "prebalanced", path
            assert (on.enabled, on.ratio, on.scope) == (True, 1.0, "group"), path
            assert (cal.margin_shift, cal.mode, cal.direction, cal.delta, cal.scope) == (
                True,
                "mean",
                "both",
                0.4,
                "group",
            ), path
        if "strong_to_weak" in str(path) and cfg.method.name == "opd":
            assert set(cfg.teacher_tokenizers) == {"math", "code"}, path
    names = {load_experiment(p).method.name for p in FILES}
    assert names == {"opd", "grpo"}
