"""The `vllm` rollout engine as vLLM's users run it, against a stand-in for vLLM 0.30.0 (the `gpu`
extra's pin): tests/engines/fake_vllm/vllm, written from that version's source (its docstring
says what it models and where it was read), because vLLM does not install on a machine without a
GPU. What is checked: several processes each get their own engine on their own GPU
(`external_launcher`, RANK / LOCAL_RANK / WORLD_SIZE); bf16-mixed samples in bfloat16, not in the
master weights' float32; torch's cache is emptied before every wake; a policy update that comes
while the engine sleeps leaves it asleep (vLLM ignores a sleep() while any tag still sleeps) and
reaches the model when it wakes; a missing or other vLLM is refused before any model loads.
torch.cuda.empty_cache is recorded, not run: it is outside our control on a CPU."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from uniopd.commands.cli import main
from uniopd.engine.distributed import Dist
from uniopd.engine.rollout import EngineOptions, make_engine
from uniopd.engine.sampling import resolve_sampling
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan

FAKE = Path(__file__).parent / "fake_vllm"
ROOT = Path(__file__).resolve().parents[2]
VLLM_VERSION = "0.30.0"  # the stand-in's, the `gpu` extra's and the engine's
LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "VLLM_ENABLE_V1_MULTIPROCESSING")


def _hide_vllm(monkeypatch) -> None:
    """No `vllm` module imported before the test, none left after it, the launcher's variables
    put back as they were."""
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    for var in LAUNCHER_ENV:
        monkeypatch.setenv(var, "unset")  # remembered as it was, restored after the test
        monkeypatch.delenv(var)


@pytest.fixture
def vllm(monkeypatch):
    """The stand-in, importable as `vllm` (with its 0.30.0 package metadata), its call log
    cleared, torch.cuda.empty_cache recorded into that log."""
    _hide_vllm(monkeypatch)
    monkeypatch.syspath_prepend(str(FAKE))
    import vllm as fake

    fake.CALLS.clear()
    fake.WARNINGS.clear()
    fake.ENGINES.clear()
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: fake.CALLS.append(("empty_cache",)))
    yield fake
    sys.modules.pop("vllm", None)


@pytest.fixture
def student(make_checkpoint):
    path = make_checkpoint(41)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _names(calls) -> list[str]:
    return [c[0] for c in calls]


def test_one_engine_per_process_each_on_its_own_gpu(vllm, student):
    model, tok = student
    options = EngineOptions(dist=Dist(rank=1, world=2, local_rank=1))
    engine = make_engine("vllm", model, tok, options)
    llm = vllm.ENGINES[-1]
    assert engine.llm is llm
    assert llm.kwargs["distributed_executor_backend"] == "external_launcher"
    assert llm.env == {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}
    assert llm.device_index == 1  # not every process's engine on cuda:0


def test_one_process_keeps_vllms_own_executor(vllm, student):
    model, tok = student
    make_engine("vllm", model, tok)
    llm = vllm.ENGINES[-1]
    assert "distributed_executor_backend" not in llm.kwargs
    assert llm.env == {"RANK": None, "LOCAL_RANK": None, "WORLD_SIZE": None}


def test_samples_in_the_rollout_precision_not_the_master_weights(vllm, student):
    model, tok = student
    assert next(model.parameters()).dtype == torch.float32  # bf16-mixed's master weights
    make_engine("vllm", model, tok, EngineOptions(dtype=torch.bfloat16))
    llm = vllm.ENGINES[-1]
    assert llm.kwargs["dtype"] == "bfloat16"
    pushed = llm.llm_engine.model_executor.model.weights
    assert pushed and all(t.dtype == torch.bfloat16 for t in pushed.values())


def test_a_policy_update_while_asleep_stays_asleep_and_reaches_the_model_on_waking(vllm, student):
    model, tok = student
    engine = make_engine("vllm", model, tok)
    llm = vllm.ENGINES[-1]
    executor = llm.llm_engine.model_executor
    engine.sleep()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    engine.update_weights(model)
    assert executor.is_sleeping and executor.sleeping_tags == {"weights", "kv_cache"}
    assert not executor.model.on_gpu  # the weights did not wake and stay on the GPU
    vllm.CALLS.clear()
    engine.wake()
    assert not llm.llm_engine.is_sleeping()
    for name, value in model.state_dict().items():
        assert torch.equal(executor.model.weights[name], value.to(executor.model.dtype)), name
    engine.sleep()  # the next sleep sleeps
    assert executor.is_sleeping and not executor.model.on_gpu
    assert _names(vllm.CALLS) == [
        "empty_cache",
        "wake_up",
        "load_weights",
        "wake_up",
        "sleep",
    ]
    assert vllm.WARNINGS == []  # no "Executor is already sleeping." and the like


def test_torch_cache_is_emptied_before_every_wake(vllm, student):
    model, tok = student
    engine = make_engine("vllm", model, tok)
    s = resolve_sampling(tok, model, max_new_tokens=5)
    prompts = [tok("Ana has 7 pens.", add_special_tokens=False)["input_ids"]] * 3
    for _ in range(3):
        engine.sleep()
        engine.update_weights(model)
        out = engine.generate(prompts, s)  # wakes first
        assert [len(r) for r in out.responses] == [len(lp) for lp in out.logprobs]
    names = _names(vllm.CALLS)
    wakes = [i for i, name in enumerate(names) if name == "wake_up"]
    assert len(wakes) == 6  # weights, then the KV cache, three times
    for i in wakes[::2]:
        assert names[i - 1] == "empty_cache"
    assert vllm.WARNINGS == []


def test_a_bf16_mixed_run_drives_vllm_through_its_states(vllm, make_checkpoint, tmp_path):
    """Two training steps through the trainer with rollout.engine: vllm under bf16-mixed: the
    engine samples in bfloat16, every wake is preceded by emptying torch's cache, the updates
    are pushed, and vLLM never warns of a sleep or wake it ignored."""
    from uniopd.config import ExperimentConfig

    cfg = ExperimentConfig.model_validate(
        {
            "name": "vllm-run",
            "seed": 3,
            "device": "cpu",
            "precision": "bf16-mixed",
            "student": str(make_checkpoint(11)),
            "teachers": {"math": str(make_checkpoint(12))},
            "data": {"train": ["builtin:math/train"], "eval": [], "limit": 8},
            "rollout": {"engine": "vllm", "group_size": 2, "prompts_per_batch": 2},
            "train": {"steps": 2, "warmup_steps": 0},
            "eval": {"every": 0},
            "output": {"root": str(tmp_path / "runs"), "progress": False},
        }
    )
    trainer = prepare(make_plan(cfg), RunDir.create(cfg.output.root, cfg.name))
    trainer.train()
    llm = vllm.ENGINES[-1]
    assert llm.kwargs["dtype"] == "bfloat16"
    names = _names(vllm.CALLS)
    assert names.count("generate") == 2 and names.count("sleep") == 2
    for i, name in enumerate(names):
        if name == "wake_up" and names[i - 1] != "load_weights":
            assert names[i - 1] == "empty_cache"
    assert vllm.WARNINGS == []
    trainer.engine.wake()  # the last update was kept for the next wake
    pushed = llm.llm_engine.model_executor.model.weights
    for name, value in trainer.student.state_dict().items():
        assert torch.equal(pushed[name], value.to(torch.bfloat16)), name


# --- a missing or other vLLM ----------------------------------------------------------------------


def _experiment(tiny_experiment, make_checkpoint, tmp_path) -> Path:
    cfg = tiny_experiment(
        make_checkpoint(11),
        make_checkpoint(12),
        {"train": ["builtin:math/train"], "limit": 8},
        tmp_path / "runs",
        rollout={"engine": "vllm"},
        tracking={"wandb": "disabled"},
    )
    path = tmp_path / "exp.yaml"
    path.write_text("# vllm engine test\n" + yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("command", ["run", "validate"])
def test_another_vllm_version_is_refused_before_any_model_loads(
    command, vllm, tiny_experiment, make_checkpoint, tmp_path, monkeypatch, capsys, no_model_loads
):
    other = tmp_path / "site"
    (other / "vllm-0.32.0.dist-info").mkdir(parents=True)
    (other / "vllm-0.32.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0\n"
    )
    monkeypatch.syspath_prepend(str(other))  # found before the stand-in's 0.30.0
    exp = _experiment(tiny_experiment, make_checkpoint, tmp_path)
    assert main([command, str(exp)]) == 2
    err = capsys.readouterr().err
    assert f"rollout.engine = vllm: vllm 0.32.0 is installed; uniopd needs {VLLM_VERSION}" in err
    assert err.count("uniopd: error:") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    assert vllm.CALLS == []


def test_an_engine_made_by_hand_refuses_another_version(vllm, student, tmp_path, monkeypatch):
    other = tmp_path / "site" / "vllm-0.34.0.dist-info"
    other.mkdir(parents=True)
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.34.0\n")
    monkeypatch.syspath_prepend(str(other.parent))
    model, tok = student
    with pytest.raises(
        RuntimeError, match=f"vllm 0.34.0 is installed; uniopd needs {VLLM_VERSION}"
    ):
        make_engine("vllm", model, tok)
    assert vllm.ENGINES == []


def test_a_missing_vllm_is_refused_before_any_model_loads(
    tiny_experiment, make_checkpoint, tmp_path, monkeypatch, capsys, no_model_loads
):
    _hide_vllm(monkeypatch)
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    exp = _experiment(tiny_experiment, make_checkpoint, tmp_path)
    assert main(["validate", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "rollout.engine = vllm: needs vllm, which is not installed: pip install" in err


def test_the_gpu_extra_pins_the_version_the_engine_and_the_stand_in_were_written_against(vllm):
    from uniopd.engine.rollout import vllm as engine

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["gpu"] == [f"vllm=={VLLM_VERSION}"]
    assert engine.VLLM_VERSION == vllm.__version__ == VLLM_VERSION
