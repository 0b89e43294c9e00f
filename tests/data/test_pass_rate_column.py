"""A precomputed pass-rate column stands in for offline balancing's sampled estimate (METHOD 3.1):
its rows are not sampled, the others still are, and the difficulty table says which is which."""

import csv
import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from uniopd.config import ExperimentConfig
from uniopd.data import DataError, load_source
from uniopd.loop.difficulty import cache_dir, offline_balance
from uniopd.run_dir import RunDir
from uniopd.verifiers import get_verifier


def write_rows(path, rates):
    rows = [
        {"prompt": f"What is {i}+1?", "answer": str(i + 1), "domain": "math"}
        | ({} if rate is None else {"solve_rate": rate})
        for i, rate in enumerate(rates)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(student, tmp_path):
    return ExperimentConfig.model_validate(
        {
            "name": "pass-rate",
            "device": "cpu",
            "student": str(student),
            "teachers": {"math": str(student)},
            "data": {"train": ["unused.jsonl"]},
            "rollout": {"max_new_tokens": 4},
            "balance": {"offline": {"mode": "balance", "n_samples": 4}},
            "output": {"root": str(tmp_path / "runs"), "progress": False},
        }
    )


def balance(problems, cfg, model, tokenizer):
    run = RunDir.create(cfg.output.root, cfg.name)
    out = offline_balance(model, tokenizer, problems, {"math": get_verifier("math")}, cfg, run)
    with (run.path / "difficulty" / "table.csv").open() as f:
        return out, list(csv.DictReader(f))


def test_rows_with_a_pass_rate_are_not_sampled(tmp_path, monkeypatch, make_checkpoint):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    path = write_rows(tmp_path / "rows.jsonl", [0.0, 0.5, 1.0, 0.25])
    problems = load_source(str(path), columns={"pass_rate": "solve_rate"})
    cfg = config(make_checkpoint(41), tmp_path)
    # every row has its pass rate: nothing is sampled, so no model is needed at all
    out, table = balance(problems, cfg, model=None, tokenizer=None)
    assert [r["pass_count"] for r in table] == ["0", "2", "4", "1"]  # round(rate * n_samples)
    assert [r["p"] for r in table] == ["0.0", "0.5", "1.0", "0.25"]
    assert {r["pass_count_from"] for r in table} == {"column"}
    assert out and not cache_dir().exists()


def test_rows_without_one_are_still_sampled(tmp_path, monkeypatch, make_checkpoint):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    path = write_rows(tmp_path / "rows.jsonl", [None, 1.0, None, 0.5])
    problems = load_source(str(path), columns={"pass_rate": "solve_rate"})
    student = make_checkpoint(41)
    cfg = config(student, tmp_path)
    model = AutoModelForCausalLM.from_pretrained(student)
    _, table = balance(problems, cfg, model, AutoTokenizer.from_pretrained(student))
    assert [r["pass_count_from"] for r in table] == ["sampled", "column", "sampled", "column"]
    assert [r["pass_count"] for r in table][1::2] == ["4", "2"]
    [cached] = cache_dir().glob("*.json")  # the estimate covers the two sampled rows only
    assert len(json.loads(cached.read_text())["pass_counts"]) == 2


@pytest.mark.parametrize("rate", [1.5, -0.1, "high", True])
def test_a_pass_rate_outside_0_1_is_a_data_error_naming_the_row(tmp_path, rate):
    path = write_rows(tmp_path / "rows.jsonl", [0.5, rate])
    with pytest.raises(DataError) as info:
        load_source(str(path), columns={"pass_rate": "solve_rate"})
    assert str(info.value) == (
        f"{path}: row 2: field 'pass_rate' must be a number in [0, 1], got {rate!r}"
    )
