"""The tiny world's dials: recipes by version and dial, per-model folders, what each dial changes,
and the bad settings refused at load with exit code 2 naming the setting."""

import json

import pandas as pd
import pytest

from uniopd.builder.pipeline import _warm_start_data
from uniopd.config import ExperimentConfig
from uniopd.loop.runner import prepare
from uniopd.run_dir import RunDir
from uniopd.setup.plan import make_plan
from uniopd.world import paths, recipe
from uniopd.world.recipe import Dials, make_recipe, select_world


@pytest.fixture(autouse=True)
def _default_world_after():
    yield
    select_world()  # the dials live in the environment: leave the default for the next test


def test_dials_change_only_the_models_they_name():
    base = make_recipe()
    flawed = make_recipe(dials=Dials(teacher_flaw=0.3))
    skill = make_recipe(dials=Dials(deficit="skill"))
    assert flawed["models"]["teacher-math"]["early_stop_rate"] == 0.3
    assert flawed["models"]["student"] == base["models"]["student"]
    assert skill["models"]["student"]["early_stop_rate"] == 0.0
    assert skill["models"]["teacher-code"] == base["models"]["teacher-code"]
    # per-model folders: a dial rebuilds only what it changes
    assert paths.model_key("student", flawed) == paths.model_key("student", base)
    assert paths.model_key("teacher-math", flawed) != paths.model_key("teacher-math", base)
    assert paths.model_key("student", skill) != paths.model_key("student", base)
    assert paths.world_dir(flawed) == paths.world_dir(base)


def test_version_4_is_still_its_own_recipe():
    v4, v5 = make_recipe(4), make_recipe(5)
    assert (v4["grpo"]["std"], v5["grpo"]["std"]) == ("population", "unbiased")
    assert v4["models"]["student"] == v5["models"]["student"]  # v5's default dials are v4's
    assert (v4["tokenizer"], v5["tokenizer"]["pretokenizer"]) == ({"vocab_size": 512}, "qwen2")
    assert paths.world_dir(v4) != paths.world_dir(v5)


def test_the_selected_world_reaches_the_builtin_refs(tmp_path, monkeypatch):
    from uniopd.refs import resolve_model

    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path))
    default = resolve_model("builtin:teacher-code")
    ExperimentConfig.model_validate(_cfg(world={"teacher_flaw": 0.5})).world.select()
    assert resolve_model("builtin:teacher-code") != default
    assert resolve_model("builtin:student") != default  # (a different model, same folder key)
    select_world()
    assert resolve_model("builtin:teacher-code") == default


def test_the_skill_deficit_leaves_its_phrases_out_of_the_warm_start():
    skill = make_recipe(dials=Dials(deficit="skill"))["models"]["student"]
    habit = make_recipe()["models"]["student"]
    data = _warm_start_data(skill, seed=0)
    for domain, phrases in recipe.HELD_OUT.items():
        rows = [p for p in data if p.domain == domain]
        assert rows and not any(ph in p.prompt for p in rows for ph in phrases)
    full = _warm_start_data(habit, seed=0)
    assert any("sells" in p.prompt for p in full) and len(data) < len(full) / 2


def _cfg(**sections):
    cfg = {
        "name": "dials",
        "student": "builtin:student",
        "teachers": {"math": "builtin:teacher-math", "code": "builtin:teacher-code"},
        "data": {"train": ["builtin:math/train"]},
    }
    cfg.update(sections)
    return cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("world.teacher_flaw=0.95", "world.teacher_flaw: Input should be less than or equal"),
        ("world.teacher_flaw=-0.1", "world.teacher_flaw: Input should be greater than"),
        ("world.deficit=lazy", "world.deficit: Input should be 'habit', 'skill' or 'soft_skill'"),
        ("world.horizon=8", "world.horizon: 8 needs world.version 6 (has 5)"),
        ("world.horizon=9", "world.horizon: Input should be less than or equal to 8"),
        ("world.deficit=soft_skill", "world.deficit: deficit 'soft_skill' needs world.version 6"),
        ("world.latent_difficulty=true", "world.latent_difficulty: latent_difficulty: true needs"),
        ("world.difficulty_skew=0", "world.difficulty_skew: Input should be greater than 0"),
        ("world.version=3", "world.version: 3 is not built by this code any more"),
        ("world.difficulty_skew_size=50", "difficulty_skew_size is set but difficulty_skew"),
    ],
)
def test_a_bad_dial_is_refused_at_load_naming_it(override, message, tmp_path, capsys):
    from uniopd.commands.cli import main

    code = main(["validate", "--no-models", "experiments/quickstart.yaml", "--set", override])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_dial_combination_the_builder_cannot_make_is_refused(capsys, make_checkpoint):
    from uniopd.commands.cli import main

    # version 4 has no dials
    code = main(
        ["validate", "--no-models", "experiments/quickstart.yaml"]
        + ["--set", "world.version=4", "--set", "world.deficit=skill"]
    )
    assert code == 2 and "world.version: 4 has no dials" in capsys.readouterr().err
    # latent difficulty sets the habit's chance of quitting: a student without the habit has none
    code = main(
        ["validate", "--no-models", "experiments/quickstart.yaml", "--set", "world.version=6"]
        + ["--set", "world.deficit=skill", "--set", "world.latent_difficulty=true"]
    )
    assert code == 2 and "deficit 'skill' has no habit" in capsys.readouterr().err
    # model dials on an experiment without built-in models
    path = str(make_checkpoint(61))
    code = main(
        ["validate", "--no-models", "experiments/quickstart.yaml", "--set", f"student={path}"]
        + ["--set", f"teachers.math={path}", "--set", f"teachers.code={path}"]
        + ["--set", "world.teacher_flaw=0.2"]
    )
    assert code == 2 and "names none" in capsys.readouterr().err
    # the world command names the setting too
    assert main(["world", "info", "--teacher-flaw", "2"]) == 2
    assert "world.teacher_flaw" in capsys.readouterr().err


def test_difficulty_skew_sets_the_share_of_extremes_and_is_recorded(
    tiny_experiment, coin, tmp_path, monkeypatch
):
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    cfg = ExperimentConfig.model_validate(
        tiny_experiment(
            coin["student"],
            coin["teacher"],
            [coin["data"]],
            tmp_path / "runs",
            name="skew",
            seed=3,
            # 2 samples of a coin: about half the prompts are extremes, half mid
            balance={"offline": {"mode": "none", "n_samples": 2}},
            world={"difficulty_skew": 0.75, "difficulty_skew_size": 8},
            rollout={"max_new_tokens": 8},
            train={"steps": 1, "lr": 1e-4},
            eval={"n_samples": None, "max_prompts_per_domain": None},
        )
    )
    run = RunDir.create(cfg.output.root, cfg.name)
    prepare(make_plan(cfg), run)
    meta = json.loads((run.path / "meta.json").read_text())
    assert meta["n_train_items"] == 8
    table = pd.read_csv(run.path / "difficulty" / "table.csv")
    listed = table[table.in_list]
    assert len(listed) == 8 and int(listed.pass_count.isin([0, 2]).sum()) == 6
    hist = json.loads((run.path / "difficulty" / "histograms.json").read_text())["math"]
    assert sum(hist["before"]) == 8 and sum(hist["natural"]) == 24
    assert meta["world"]["difficulty_skew"] == 0.75
    # a skew the pools cannot make stops at start, naming the dial
    from uniopd.data.errors import DataError

    cfg2 = cfg.model_copy(deep=True)
    cfg2.world.difficulty_skew_size = 24
    with pytest.raises(DataError, match=r"world.difficulty_skew = 0.75 \(math\)"):
        prepare(make_plan(cfg2), RunDir.create(cfg.output.root, "skew-2"))


def test_world_info_reads_an_experiments_dials(tmp_path, monkeypatch, capsys):
    from uniopd.commands.cli import main

    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path))
    assert main(["world", "info", "--from", "experiments/study/order/opd_f0.4.yaml"]) == 0
    out = capsys.readouterr().out
    flawed = make_recipe(dials=Dials(teacher_flaw=0.4))
    assert "teacher_flaw=0.4" in out and paths.model_key("teacher-math", flawed) in out
    rows = [line.split()[:2] for line in out.splitlines()]
    assert ["teacher-math", "no"] in rows  # nothing built in this home (a table; --json: all)
