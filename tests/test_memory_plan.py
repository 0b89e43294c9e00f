"""`uniopd plan`: the per-GPU memory of a run from each model's config.json, before any weight
loads, checked against hand-computed figures for Qwen3-4B; a file that cannot fit its GPU is
refused (exit code 2) naming the largest terms and what to change; `uniopd validate` runs the
same plan on files that target a GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from uniopd.commands.cli import main
from uniopd.config import load_experiment
from uniopd.setup.gpu_cards import GIB, card_bytes
from uniopd.setup.memory_plan import make_memory_plan
from uniopd.setup.model_shapes import SHIPPED, model_shape, read_config, shape_from_config

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "experiments" / "paper"
FILES = sorted(p for p in PAPER.rglob("*.yaml") if not p.name.startswith("_"))
MULTI_TEACHER = PAPER / "multi_teacher" / "uniopd.yaml"
QWEN3_4B = SHIPPED / "qwen3-4b" / "config.json"


@pytest.fixture(autouse=True)
def _fresh_checkout(tmp_path, monkeypatch):
    """Launched where no models/ folder exists: every shape comes from the shipped configs."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PAPER)))
def test_every_paper_file_fits_the_gpu_it_names(path, capsys):
    assert main(["plan", str(path), "--nproc", "8"]) == 0
    out = capsys.readouterr().out
    assert "fits" in out and "shipped qwen3-" in out
    for term in ("student weights", "Adam moments", "gradients", "activations", "KV cache"):
        assert term in out


def test_the_qwen3_4b_parameter_count_is_the_hand_computed_one():
    s = shape_from_config(read_config(QWEN3_4B), "qwen3-4b")
    embeddings = 151936 * 2560  # tied: the output head is the same matrix
    attention = 2 * 2560 * 32 * 128 + 2 * 2560 * 8 * 128 + 2 * 128  # q, o, k, v, q/k norms
    layer = attention + 3 * 2560 * 9728 + 2 * 2560  # gated MLP, two RMSNorms
    assert s.params == embeddings + 36 * layer + 2560 == 4_022_468_096
    assert s.kv_bytes_per_token(2) == 2 * 36 * 8 * 128 * 2  # 144 KiB a cached bf16 token


def test_full_fine_tuning_takes_16_bytes_a_parameter_before_activations():
    cfg = load_experiment(PAPER / "multi_teacher" / "grpo.yaml", [])  # no teacher loaded
    plan = make_memory_plan(cfg, card_bytes("h200"))
    by_name = {t.name: t.bytes for t in plan.terms}
    student = by_name["student weights"] + by_name["Adam moments"] + by_name["gradients"]
    assert student == 16 * 4_022_468_096  # fp32 master 4 + fp32 gradient 4 + Adam 8
    assert by_name["bf16 weight cast (autocast)"] == 2 * 4_022_468_096
    assert by_name["log-prob chunk buffers"] == 3 * 512 * 151936 * 4


def test_fsdp_divides_the_student_and_lora_keeps_only_the_adapter_state():
    cfg = load_experiment(MULTI_TEACHER, ["train.fsdp=true", "rollout.engine=hf"])
    sharded = {t.name: t.bytes for t in make_memory_plan(cfg, card_bytes("h100"), 8).terms}
    assert sharded["Adam moments"] == 8 * 4_022_468_096 // 8
    lora = load_experiment(MULTI_TEACHER, ["student.lora.r=16"])
    terms = {t.name: t.bytes for t in make_memory_plan(lora, card_bytes("h100")).terms}
    # q, k, v, o of 36 layers: r x (in + out) each
    adapter = 36 * 16 * ((2560 + 4096) + 2 * (2560 + 1024) + (4096 + 2560))
    assert terms["Adam moments"] == 8 * adapter
    assert terms["student weights"] == 4 * 4_022_468_096  # the frozen base stays whole


def test_a_file_that_does_not_fit_exits_2_naming_the_largest_terms_and_the_fixes(capsys):
    assert main(["plan", str(MULTI_TEACHER), "--gpu", "h100"]) == 2
    captured = capsys.readouterr()
    assert "DOES NOT FIT" in captured.out
    err = captured.err
    assert "more than the 80 GiB of one H100" in err
    assert "largest: Adam moments 30.0 GiB, student weights 15.0 GiB" in err
    for fix in ("train.fsdp: true", "student.lora", "max_tokens_per_micro_batch", "serve teacher"):
        assert fix in err
    assert "Traceback" not in err


def test_the_named_fix_makes_it_fit_an_h100(capsys):
    fixed = ["train.fsdp=true", "rollout.engine=hf", "rollout.max_batch_rows=8"]
    assert main(["plan", str(MULTI_TEACHER), *fixed, "--gpu", "h100", "--nproc", "8"]) == 0
    assert "FSDP gathered layers" in capsys.readouterr().out


def test_the_same_file_fits_an_h200(capsys):
    assert main(["plan", str(MULTI_TEACHER), "--gpu", "h200"]) == 0
    assert "(H200): fits" in capsys.readouterr().out


def test_a_named_config_json_wins_over_the_shipped_match(capsys):
    small = str(SHIPPED / "qwen3-1.7b" / "config.json")
    assert main(["plan", str(MULTI_TEACHER), "--config", f"student={small}"]) == 0
    assert "1,720.6M parameters" in capsys.readouterr().out


def test_a_missing_or_malformed_named_config_is_a_clear_error(tmp_path, capsys):
    assert main(["plan", str(MULTI_TEACHER), "--config", "student=nowhere/config.json"]) == 2
    assert "nowhere/config.json: no such config.json" in capsys.readouterr().err
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    assert main(["plan", str(MULTI_TEACHER), "--config", f"student={bad}"]) == 2
    assert "not a readable JSON config.json" in capsys.readouterr().err
    bad.write_text(json.dumps({"hidden_size": 8}))
    assert main(["plan", str(MULTI_TEACHER), "--config", f"math={bad}"]) == 2
    assert "not a decoder config.json this plan reads (missing 'num_hidden_layers')" in (
        capsys.readouterr().err
    )
    assert main(["plan", str(MULTI_TEACHER), "--config", "student"]) == 2
    assert "expected ROLE=path/to/config.json" in capsys.readouterr().err


def test_a_model_with_no_config_anywhere_names_the_option(capsys):
    assert main(["plan", str(MULTI_TEACHER), "student=models/Mystery-7B"]) == 2
    err = capsys.readouterr().err
    assert "student = models/Mystery-7B: no config.json there" in err
    assert "--config student=path/to/config.json" in err


def test_an_unknown_gpu_is_a_clear_error(capsys):
    assert main(["plan", str(MULTI_TEACHER), "--gpu", "h1000"]) == 2
    assert "gpu 'h1000': not a card" in capsys.readouterr().err


def test_tiny_world_models_are_planned_from_their_recipe_sizes(capsys):
    assert main(["plan", str(REPO / "experiments" / "quickstart.yaml")]) == 0
    assert "builtin:student (tiny-world recipe)" in capsys.readouterr().out
    assert model_shape("builtin:student", "student").layers == 3  # models.SIZES["small"]


def _experiment(tmp_path: Path, header: str, **extra) -> str:
    """A Qwen3-4B student with a Qwen3-4B teacher, as folders holding only config.json."""
    for role in ("student", "teacher"):
        (tmp_path / role).mkdir(exist_ok=True)
        shutil.copy(QWEN3_4B, tmp_path / role / "config.json")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps({"id": f"r{i}", "domain": "math", "prompt": f"{i}+1?", "answer": str(i + 1)})
            for i in range(4)
        )
    )
    body = {
        "name": "plan-me",
        "student": str(tmp_path / "student"),
        "teachers": {"math": str(tmp_path / "teacher")},
        "data": {"train": [str(rows)]},
        **extra,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(header + yaml.safe_dump(body))
    return str(path)


def test_validate_refuses_a_file_that_cannot_fit_the_gpu_it_names(tmp_path, capsys):
    exp = _experiment(tmp_path, "# gpu: 40\n")
    assert main(["validate", "--no-models", exp]) == 2
    err = capsys.readouterr().err
    assert "more than the 40 GiB of one 40 GiB GPU" in err and "Adam moments" in err


def test_validate_plans_a_cpu_file_for_information_only(tmp_path, capsys):
    exp = _experiment(tmp_path, "", device="cpu")
    assert main(["validate", "--no-models", exp]) == 0
    out = capsys.readouterr().out
    assert "memory:" in out and "informational: the file names no GPU" in out


def test_the_card_line_is_read_through_base_files(tmp_path):
    from uniopd.setup.gpu_cards import file_card

    (tmp_path / "_base.yaml").write_text("# gpu: h200\nseed: 1\n")
    (tmp_path / "x.yaml").write_text("base: _base.yaml\nname: x\n")
    assert file_card(tmp_path / "x.yaml") == "h200"
    assert card_bytes("h200")[1] == 140 * GIB
