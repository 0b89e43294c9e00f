"""LoRA students (`student.lora`): only the adapter trains, checkpoints hold the adapter, a run
resumes from one, `uniopd merge` folds it into a plain checkpoint, and a target module the model
lacks is refused before any model loads."""

import json
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from uniopd.commands.cli import main
from uniopd.config import ExperimentConfig, load_experiment, save_resolved
from uniopd.engine.lora import LoraError, check_lora_targets
from uniopd.launch.start import create_run
from uniopd.loop.runner import prepare
from uniopd.setup.plan import make_plan

LORA = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def _experiment(tiny_experiment, root, student, teacher, lora=LORA, **extra) -> dict:
    return tiny_experiment(
        {"model": str(student), "lora": lora},
        {"math": teacher, "code": teacher},
        {
            "train": ["builtin:math/train", "builtin:code/train"],
            "eval": ["builtin:math/test", "builtin:code/test"],
            "limit": 12,
        },
        root / "runs",
        name="r",
        seed=5,
        rollout={"group_size": 4, "prompts_per_batch": 3, "max_new_tokens": 8},
        # a large lr, so four steps move the adapter far from its zero start
        train={"steps": 4, "lr": 1e-2, "warmup_steps": 1},
        eval={"n_samples": 2},
        output={"checkpoint_every": 2, "keep_checkpoints": 5},
        tracking={"wandb": "disabled"},
        **extra,
    )


def _write(path, cfg: dict):
    path.write_text("# r.yaml — LoRA test\n" + yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def lora_run(tiny_experiment, tmp_path_factory, make_checkpoint):
    """One LoRA run, as `uniopd run` makes it, with its trainer kept for a look at the weights."""
    root = tmp_path_factory.mktemp("lora")
    s, t = make_checkpoint(11), make_checkpoint(12)
    exp = _write(root / "r.yaml", _experiment(tiny_experiment, root, s, t))
    cfg = load_experiment(exp)
    run = create_run(cfg)
    trainer = prepare(make_plan(cfg), run)
    trainer.train()
    return {"exp": exp, "run": run.path, "trainer": trainer, "base": make_checkpoint(11)}


def test_lora_run_trains_only_the_adapter(lora_run):
    student = lora_run["trainer"].student
    original = AutoModelForCausalLM.from_pretrained(lora_run["base"]).state_dict()
    base, adapter = {}, {}
    for name, p in student.get_base_model().named_parameters():
        if "lora_" in name:
            adapter[name] = p
        else:
            base[name.replace(".base_layer", "")] = p
    assert adapter and all(p.requires_grad for p in adapter.values())
    assert not any(p.requires_grad for p in base.values())
    for name, p in base.items():  # the frozen weights, bit for bit
        assert torch.equal(p, original[name]), name
    lora_b = [p for n, p in adapter.items() if "lora_B" in n]  # peft starts B at zero
    assert len(lora_b) == 2 * 2 and all(p.abs().max() > 0 for p in lora_b)  # 2 layers x q, v
    optimized = [p for g in lora_run["trainer"].optimizer.param_groups for p in g["params"]]
    assert {id(p) for p in optimized} == {id(p) for p in adapter.values()}


def test_lora_checkpoint_holds_the_adapter(lora_run):
    ckpt = lora_run["run"] / "checkpoints" / "step_000004"
    files = {p.name for p in ckpt.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "trainer_state.pt"} <= files
    assert "tokenizer_config.json" in files
    assert "model.safetensors" not in files and "config.json" not in files
    config = json.loads((ckpt / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert config["base_model_name_or_path"] == str(lora_run["base"])
    saved = load_file(ckpt / "adapter_model.safetensors")
    assert saved and all("lora_" in k for k in saved)
    # the adapter as trained; peft saves its tensors without the adapter's name ("default")
    live = lora_run["trainer"].student.named_parameters()
    trained = {n.replace(".default", ""): p for n, p in live if "lora_" in n}
    assert trained.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(trained[key], value), key
    # the resolved config, in the mapping form, loads again
    assert load_experiment(lora_run["run"] / "config.yaml").student.lora.r == 4


def test_merge_gives_a_plain_model_with_the_same_logits(lora_run, tmp_path, capsys):
    from peft import PeftModel

    ckpt = lora_run["run"] / "checkpoints" / "step_000004"
    out = tmp_path / "merged"
    assert main(["merge", str(ckpt), "--out", str(out)]) == 0
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(lora_run["base"]), str(ckpt)
    ).eval()
    ids = torch.randint(
        0, merged.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        want, got = peft_model(input_ids=ids).logits, merged(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(lora_run["base"])(input_ids=ids).logits
    # W + (alpha/r) B A folded once vs applied per call: float32 rounding only
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (want - base).abs().max() > 1e-3  # the adapter does change the function
    # the merged model is what `uniopd eval` loads, as any checkpoint
    assert main(["eval", str(lora_run["exp"]), f"student={out}", "output.progress=false"]) == 0
    assert f"model: {out}" in capsys.readouterr().out


def test_eval_of_a_lora_run_directory_loads_its_adapter(lora_run, capsys):
    assert main(["eval", str(lora_run["run"])]) == 0
    assert "step_000004" in capsys.readouterr().out


def test_merge_bad_input(lora_run, make_checkpoint, tmp_path, capsys):
    assert main(["merge", str(make_checkpoint(11)), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "not a LoRA adapter checkpoint" in err and "adapter_config.json" in err
    assert not (tmp_path / "m").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("mine")
    ckpt = lora_run["run"] / "checkpoints" / "step_000004"
    assert main(["merge", str(ckpt), "--out", str(taken)]) == 2
    assert "not an empty folder" in capsys.readouterr().err


@pytest.mark.slow  # two more runs
def test_resumed_lora_run_ends_with_the_same_adapter(
    tiny_experiment, lora_run, make_checkpoint, tmp_path
):
    """Killed after step 2's checkpoint and resumed: the adapter is loaded back on the base and
    trained on to the same final adapter and losses as the uninterrupted run."""
    cfg = _experiment(tiny_experiment, tmp_path, lora_run["base"], make_checkpoint(12))
    exp = _write(tmp_path / "r.yaml", cfg)
    assert main(["run", str(exp)]) == 0
    run = tmp_path / "runs" / "r"
    shutil.rmtree(run / "checkpoints" / "step_000004")
    (run / "checkpoints" / "latest").write_text("step_000002\n")
    assert main(["run", "--resume", str(run)]) == 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["resumes"][0]["from_step"] == 2

    def lines(path):
        return [json.loads(x) for x in path.read_text().splitlines()]

    a, b = lines(lora_run["run"] / "metrics.jsonl"), lines(run / "metrics.jsonl")
    assert [m["step"] for m in b] == [1, 2, 3, 4]
    assert [m["loss"] for m in a] == [m["loss"] for m in b]
    whole = load_file(lora_run["run"] / "checkpoints" / "step_000004" / "adapter_model.safetensors")
    resumed = load_file(run / "checkpoints" / "step_000004" / "adapter_model.safetensors")
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


# --- bad input: before any model loads ----------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "validate"])
def test_unknown_target_module_exits_2_before_any_model_loads(
    command, tiny_experiment, make_checkpoint, tmp_path, capsys, no_model_loads
):
    lora = {**LORA, "target_modules": ["q_proj", "q_projx"]}
    s, t = make_checkpoint(11), make_checkpoint(12)
    exp = _write(tmp_path / "r.yaml", _experiment(tiny_experiment, tmp_path, s, t, lora))
    assert main([command, str(exp)]) == 2
    err = capsys.readouterr().err
    assert "student.lora.target_modules: 'q_projx' is not a module of" in err
    assert "its linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj" in err
    assert not (tmp_path / "runs").exists()  # no run directory either


def test_unbuilt_builtin_student_is_checked_against_its_planned_config(
    tiny_experiment, make_checkpoint, tmp_path, capsys, monkeypatch, no_model_loads
):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))  # an empty home: nothing built
    cfg = _experiment(tiny_experiment, tmp_path, "builtin:student", make_checkpoint(12))
    exp = _write(tmp_path / "r.yaml", cfg)
    assert main(["validate", str(exp)]) == 0
    assert main(["validate", str(exp), "--set", "student.lora.target_modules=[mlp]"]) == 2
    err = capsys.readouterr().err
    assert "'mlp' names no layer LoRA can adapt in builtin:student" in err
    assert not (tmp_path / "home").exists()  # nothing was built to find out


def test_check_lora_targets_matches_as_peft_does(make_checkpoint):
    path = str(make_checkpoint(11))
    check_lora_targets(path, ["q_proj", "mlp.down_proj", "self_attn.v_proj", "lm_head"])
    with pytest.raises(LoraError, match="'proj' is not a module of"):
        check_lora_targets(path, ["proj"])  # a suffix of a dotted name, not of a word


def test_ema_teacher_with_lora_is_refused(tiny_experiment, make_checkpoint, tmp_path, capsys):
    cfg = _experiment(tiny_experiment, tmp_path, make_checkpoint(11), make_checkpoint(12))
    cfg["teachers"]["math"] = "self@ema"
    assert main(["validate", str(_write(tmp_path / "r.yaml", cfg))]) == 2
    assert "averages the student's full weights" in capsys.readouterr().err


# --- the string form ----------------------------------------------------------------------------


def test_the_plain_string_form_still_validates(tmp_path):
    base = {"name": "x", "data": {"train": ["builtin:math/train"]}, "method": {"name": "grpo"}}
    cfg = ExperimentConfig.model_validate({**base, "student": "builtin:student"})
    assert cfg.student.model == "builtin:student" and cfg.student.lora is None
    # an old run directory's config.yaml says `student: <str>`; the resolved one, a mapping
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({**base, "student": "/models/s"}))
    assert load_experiment(old).student.model == "/models/s"
    save_resolved(load_experiment(old, ["student.lora.r=8"]), tmp_path / "new.yaml")
    again = load_experiment(tmp_path / "new.yaml")
    assert yaml.safe_load((tmp_path / "new.yaml").read_text())["student"]["lora"]["r"] == 8
    assert again == load_experiment(old, ["student.lora.r=8"])
    # overrides: a string sets the model and keeps the section; null switches LoRA off
    assert again.student.model == "/models/s" and again.student.lora.r == 8
    moved = load_experiment(tmp_path / "new.yaml", ["student=builtin:student"])
    assert moved.student.model == "builtin:student" and moved.student.lora.r == 8
    assert load_experiment(tmp_path / "new.yaml", ["student.lora=null"]).student.lora is None
    # a base's string merges with a child's mapping
    (tmp_path / "child.yaml").write_text("base: old.yaml\nstudent: {lora: {r: 2}}\n")
    child = load_experiment(tmp_path / "child.yaml")
    assert child.student.model == "/models/s" and child.student.lora.r == 2
