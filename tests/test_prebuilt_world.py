"""The default world shipped inside the package (uniopd/builder/prebuilt.py): what ships is the
current default recipe's models, intact, scoring what was recorded, installed on first use
without training; a damaged file is refused by name and nothing half-copied is left behind."""

import shutil

import pytest
from transformers import AutoTokenizer

from uniopd.builder import prebuilt
from uniopd.world.paths import model_dir, model_key
from uniopd.world.recipe import make_recipe, select_world

SHIPPED = prebuilt.index()["models"]
QUICKSTART = {"student", "teacher-math", "teacher-code"}


def _entry(name: str) -> tuple[str, dict]:
    return next((k, e) for k, e in SHIPPED.items() if e["name"] == name)


def test_the_package_ships_the_current_default_world_of_the_quickstart():
    assert QUICKSTART <= {e["name"] for e in SHIPPED.values()}
    for key, entry in SHIPPED.items():
        # a recipe change without a re-ship would leave these orphaned: never used, silently
        assert key == model_key(entry["name"], make_recipe()), f"{key} is not the current recipe"


@pytest.mark.parametrize("name", sorted(QUICKSTART))
def test_shipped_files_match_their_checksums(name):
    key, entry = _entry(name)
    assert prebuilt.verify(key, entry) == prebuilt.PREBUILT / key
    assert "model.safetensors" in entry["files"] and "tokenizer.json" in entry["files"]


@pytest.mark.world  # greedy answers of each shipped tiny-world model to 100 prompts
@pytest.mark.parametrize("name", sorted(QUICKSTART))
def test_shipped_models_score_their_recorded_quality(name):
    # greedy answers of tiny models: another CPU's rounding may flip a few of 100 prompts
    key, entry = _entry(name)
    domains = entry["recipe"][name]["domains"]
    measured = prebuilt.greedy_quality(prebuilt.PREBUILT / key, domains)
    assert measured == pytest.approx(entry["quality"], abs=0.03)


@pytest.mark.world  # retrains the head of each tiny-world model's warm start
@pytest.mark.parametrize("name", sorted(QUICKSTART))
def test_a_rebuild_here_follows_the_recorded_warm_start(name):
    """The recipe rebuilt from scratch on this machine retraces the shipped model's recorded
    warm-start losses (its first steps; the whole build is `uniopd world build --force`, minutes,
    and benchmarks/world_rebuild.py compares every recorded figure)."""
    from uniopd.builder.pipeline import CURVE_HEAD_STEPS, warm_start_curve

    key, entry = _entry(name)
    tokenizer = AutoTokenizer.from_pretrained(prebuilt.PREBUILT / key)
    curve = warm_start_curve(name, make_recipe(), tokenizer)
    recorded = entry["record"]["sft_loss_head"]
    assert len(recorded) == CURVE_HEAD_STEPS
    assert curve == pytest.approx(recorded, rel=2e-3)


def test_first_use_installs_the_shipped_models_without_training(tmp_path, monkeypatch):
    from uniopd.builder.build import build_missing, build_world

    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path))
    select_world()
    build_missing(["student"])  # would take minutes if it trained
    key, entry = _entry("student")
    assert model_dir("student").name == key
    for f, digest in entry["files"].items():
        assert prebuilt.sha256(model_dir("student") / f) == digest
    manifest = build_world(["student"])  # already there: nothing happens
    assert manifest["models"][key]["source"] == "prebuilt"
    assert manifest["models"][key]["quality"] == entry["quality"]


def test_a_damaged_shipped_file_is_refused_by_name(tmp_path, monkeypatch):
    from uniopd.builder.build import build_missing

    copy = tmp_path / "prebuilt"
    shutil.copytree(prebuilt.PREBUILT, copy)
    key, _ = _entry("teacher-code")
    weights = copy / key / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(prebuilt, "PREBUILT", copy)
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    select_world()
    with pytest.raises(prebuilt.PrebuiltError, match=r"model\.safetensors does not match"):
        build_missing(["teacher-code"])
    assert not model_dir("teacher-code").exists()  # nothing half-installed
