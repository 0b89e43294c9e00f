"""World v6's settings at load and at the command line: the message for model dials without a
builtin: model names every dial set, a horizon too long for rollout.max_new_tokens is a warning
naming both numbers, and `uniopd world` takes --latent-difficulty and --horizon."""

from uniopd.config.doubts import doubts
from uniopd.config.load import load_experiment
from uniopd.world import paths
from uniopd.world.recipe import Dials, make_recipe


def test_model_dials_without_builtin_models_name_every_dial_set(capsys, make_checkpoint):
    from uniopd.commands.cli import main

    path = str(make_checkpoint(61))
    code = main(
        ["validate", "--no-models", "experiments/quickstart.yaml", "--set", f"student={path}"]
        + ["--set", f"teachers.math={path}", "--set", f"teachers.code={path}"]
        + ["--set", "world.version=6", "--set", "world.teacher_flaw=0.2"]
        + ["--set", "world.latent_difficulty=true", "--set", "world.horizon=8"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "names none" in err
    for dial in ("world.teacher_flaw 0.2", "world.latent_difficulty True", "world.horizon 8"):
        assert dial in err


def test_a_horizon_longer_than_the_new_tokens_is_a_warning_with_both_numbers():
    cfg = load_experiment(
        "experiments/quickstart.yaml", ["world.version=6", "world.horizon=8"]
    )  # the quickstart's 64 new tokens; 8 steps take up to about 96
    said = dict(doubts(cfg))
    assert "64" in said["rollout.max_new_tokens"] and "96" in said["rollout.max_new_tokens"]
    roomy = load_experiment(
        "experiments/quickstart.yaml",
        ["world.version=6", "world.horizon=8", "rollout.max_new_tokens=112"],
    )
    assert "rollout.max_new_tokens" not in dict(doubts(roomy))
    default = load_experiment("experiments/quickstart.yaml", ["world.version=6"])
    assert "rollout.max_new_tokens" not in dict(doubts(default))  # levels 1-4 fit in 64


def test_world_command_takes_the_v6_dials(tmp_path, monkeypatch, capsys):
    from uniopd.commands.cli import main

    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path))
    args = ["world", "info", "--version", "6", "--latent-difficulty", "--horizon", "8"]
    assert main(args) == 0
    out = capsys.readouterr().out
    latent = make_recipe(6, Dials(latent_difficulty=True))
    assert "latent_difficulty=True" in out and paths.model_key("student", latent) in out
    assert main(["world", "info", "--version", "6", "--horizon", "9"]) == 2
    assert "world.horizon" in capsys.readouterr().err
    assert main(["world", "info", "--version", "5", "--horizon", "8"]) == 2  # a v6 dial on v5
    assert "horizon" in capsys.readouterr().err


def test_world_info_of_an_older_version_lists_only_its_own_models(tmp_path, monkeypatch, capsys):
    from uniopd.commands.cli import main

    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path))
    assert main(["world", "info", "--version", "4"]) == 0  # v4 has no visual models
    out = capsys.readouterr().out
    assert "student " in out and "visual" not in out
    assert main(["world", "info", "--version", "4", "--models", "student-visual"]) == 2
    assert "not part of world version 4" in capsys.readouterr().err
