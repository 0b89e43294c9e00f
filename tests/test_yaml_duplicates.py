"""No silent config loss: a key written twice is refused naming the key and both lines, and
settings that are legal but surely unintended are said as warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from uniopd.commands.cli import main
from uniopd.commands.group import plan_group
from uniopd.config import ConfigError, load_experiment
from uniopd.sweep.spec import load_sweep

TINY = Path(__file__).resolve().parents[1] / "experiments" / "_tiny_world.yaml"

TWICE = f"""\
base: {TINY}
name: twice
rollout:
  group_size: 4
train:
  steps: 3
rollout:
  temperature: 0.9
"""


def test_a_top_level_key_written_twice_is_refused_naming_both_lines(tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text(TWICE)
    assert main(["validate", "--no-models", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: key 'rollout' written twice" in err and "at lines 3 and 7" in err


def test_a_nested_key_written_twice_is_refused(tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text(f"base: {TINY}\nname: n\ntrain:\n  lr: 1.0e-4\n  steps: 3\n  lr: 2.0e-4\n")
    with pytest.raises(
        ConfigError, match="key 'lr' written twice in one mapping, at lines 4 and 6"
    ):
        load_experiment(path)


def test_yaml_merge_keys_and_equal_keys_in_different_mappings_are_fine():
    from uniopd.config.strict_yaml import DuplicateKeyError, load

    text = "a: &x {k: 1}\nb:\n  <<: *x\n  j: 2\nc: {k: 3}\n"
    assert load(text) == yaml.safe_load(text)
    with pytest.raises(DuplicateKeyError) as info:
        load("- {k: 1, k: 2}\n")
    assert (info.value.key, info.value.first_line, info.value.second_line) == ("k", 1, 1)


def test_a_sweep_file_with_a_key_written_twice_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nbase: x.yaml\ntrials: 2\ntrials: 3\n")
    with pytest.raises(ConfigError, match="key 'trials' written twice.*lines 3 and 4"):
        load_sweep(path)


def _file(tmp_path: Path, **train) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"base": str(TINY), "name": "x", "train": train}))
    return path


def test_warm_up_longer_than_training_is_warned_about(tmp_path, capsys):
    from uniopd.config.doubts import doubts

    path = _file(tmp_path, steps=3, warmup_steps=5)
    assert main(["validate", "--no-models", str(path)]) == 0  # legal: it still runs
    err = capsys.readouterr().err
    assert f"warning: {path}: train.warmup_steps: 5 warm-up steps in a run of 3" in err
    assert [f for f, _ in doubts(load_experiment(path, ["train.warmup_steps=3"]))] == []


def test_evaluating_every_step_of_a_long_run_is_warned_about(tmp_path):
    from uniopd.config.doubts import doubts

    path = _file(tmp_path, steps=200, warmup_steps=5)
    assert [f for f, _ in doubts(load_experiment(path, ["eval.every=1"]))] == ["eval.every"]
    assert doubts(load_experiment(path, ["eval.every=20"])) == []
    assert doubts(load_experiment(path, ["eval.every=1", "train.steps=10"])) == []


def test_a_group_warns_once_per_file_not_once_per_seed(tmp_path, capsys):
    path = _file(tmp_path, steps=2, warmup_steps=5)
    plan_group([str(path)], [0, 1, 2], [])
    assert capsys.readouterr().err.count("warning:") == 1
