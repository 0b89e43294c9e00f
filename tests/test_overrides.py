"""One grammar for overrides in every command that reads experiment files (`field=value` after
the files, or `--set field=value`), and one rule for relative paths in an experiment file (beside
the file that wrote them, else the working directory)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from uniopd.commands.cli import build_parser, main
from uniopd.config import load_experiment
from uniopd.setup.plan import make_plan
from uniopd.sweep.spec import load_sweep

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "_tiny_world.yaml"


def _rows(path: Path, n: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"r{i}", "domain": "math", "prompt": f"{i}+1?", "answer": i + 1} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _own_file(folder: Path, **body) -> Path:
    """A user's own experiment file with its data beside it, on the tiny world's models."""
    _rows(folder / "rows.jsonl")
    path = folder / "exp.yaml"
    text = {"base": str(TINY), "name": "own", "teachers": {"math": "builtin:teacher-math"}}
    text["data"] = {"train": ["rows.jsonl"], "eval": ["rows.jsonl"]}
    path.write_text("# exp.yaml: a test's own file\n" + yaml.safe_dump({**text, **body}))
    return path


@pytest.fixture
def own(tmp_path, monkeypatch):
    """The user's file in tmp/mine/, run from tmp/elsewhere/: a `cd` away from it."""
    path = _own_file(tmp_path / "mine")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return path


# --- the grammar ---------------------------------------------------------------------------


def test_validate_takes_overrides_after_the_files_as_run_does(own, capsys):
    assert main(["validate", "--no-models", str(own), "train.steps=3", "--set", "seed=4"]) == 0
    assert "(opd, 3 steps; schema, data)" in capsys.readouterr().out
    assert main(["validate", "--no-models", str(own), "train.steps=0"]) == 2
    assert "override 'train.steps=0'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["run", "{f}", "train.steps=0"],
        ["run", "{f}", "--set", "train.steps=0"],
        ["eval", "{f}", "train.steps=0"],
        ["eval", "{f}", "--set", "train.steps=0"],
        ["group", "{f}", "train.steps=0", "--seeds", "0", "1"],
        ["group", "{f}", "--set", "train.steps=0"],
        ["validate", "{f}", "--set", "train.steps=0"],
    ],
)
def test_every_command_reads_the_same_overrides(own, capsys, command):
    """Each command applies the override: its error names it (exit 2, before any compute)."""
    assert main([a.format(f=own) for a in command]) == 2
    err = capsys.readouterr().err
    assert "override 'train.steps=0'" in err and "Traceback" not in err


def test_a_sweep_takes_overrides_after_its_files_own(own, tmp_path, capsys):
    sweep = tmp_path / "mine" / "s.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "base": "exp.yaml",
                "overrides": ["train.steps=2"],
                "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-3}},
                "trials": 2,
            }
        )
    )
    assert load_sweep(sweep, ["train.steps=3"]).spec.overrides == ["train.steps=2", "train.steps=3"]
    assert main(["sweep", str(sweep), "train.steps=0"]) == 2
    assert "override 'train.steps=0'" in capsys.readouterr().err


def test_every_command_that_reads_experiments_documents_its_overrides():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("run", "eval", "validate", "group", "sweep"):
        options = {s: a for a in sub.choices[name]._actions for s in a.option_strings}
        assert options["--set"].help and "FIELD=VALUE" in options["--set"].metavar, name
        text = sub.choices[name].format_help()
        assert "override" in text and "=" in text, name


def test_a_file_list_with_no_file_is_refused(capsys):
    assert main(["validate", "train.steps=3"]) == 2
    assert "name at least one file" in capsys.readouterr().err


def test_overrides_may_follow_a_groups_seeds(capsys):
    """`uniopd group FILE --seeds 0 1 output.root=R`: the list option used to swallow the
    override and stop with "invalid int value"."""
    from uniopd.commands import overrides

    args = build_parser().parse_args(["group", "a.yaml", "--seeds", "0", "1", "output.root=R"])
    assert args.seeds == [0, 1]
    assert overrides.pool(args) is None and args.targets == ["a.yaml"]
    assert args.overrides == ["output.root=R"]
    assert build_parser().parse_args(["group", "a.yaml"]).seeds == [0]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["group", "a.yaml", "--seeds", "0", "b.yaml"])
    assert "'b.yaml' is not a seed (an integer) or FIELD=VALUE" in capsys.readouterr().err


# --- the path rule -------------------------------------------------------------------------


def test_data_beside_the_file_is_read_from_any_folder(own):
    cfg = load_experiment(own)
    assert cfg.data.train == [str(own.parent / "rows.jsonl")]  # written out absolute
    assert len(make_plan(cfg, models=False).train) == 4


def test_a_base_files_paths_are_read_beside_the_base(tmp_path, monkeypatch):
    base = _own_file(tmp_path / "common")
    child = tmp_path / "mine" / "child.yaml"
    child.parent.mkdir()
    child.write_text(f"base: ../common/{base.name}\nname: child\n")
    monkeypatch.chdir(tmp_path / "mine")
    assert load_experiment(child).data.train == [str(tmp_path / "common" / "rows.jsonl")]


def test_a_path_on_the_command_line_is_read_from_the_working_directory(own, tmp_path):
    _rows(tmp_path / "elsewhere" / "rows.jsonl", n=2)  # cwd's own rows.jsonl: the override's
    cfg = load_experiment(own, ["data.train=[rows.jsonl]"])
    assert cfg.data.train == ["rows.jsonl"]
    assert len(make_plan(cfg, models=False).train) == 2


def test_paths_from_the_working_directory_still_work(tmp_path, monkeypatch):
    """Files that name paths from where they are run (the paper files: data/..., models/...)."""
    _rows(tmp_path / "data" / "rows.jsonl")
    (tmp_path / "experiments").mkdir()
    path = tmp_path / "experiments" / "x.yaml"
    path.write_text(f"base: {TINY}\nname: x\ndata: {{train: [data/rows.jsonl]}}\n")
    monkeypatch.chdir(tmp_path)
    assert load_experiment(path).data.train == ["data/rows.jsonl"]


def test_a_model_folder_beside_the_file_is_found(own):
    (own.parent / "ckpt").mkdir()
    cfg = load_experiment(own, [])
    assert cfg.student.model == "builtin:student"
    body = yaml.safe_load(own.read_text())
    own.write_text(
        yaml.safe_dump({**body, "student": "ckpt", "teachers": {"math": "ckpt+privileged"}})
    )
    cfg = load_experiment(own)
    assert cfg.student.model == str(own.parent / "ckpt")
    assert cfg.teachers["math"] == str(own.parent / "ckpt") + "+privileged"


def test_a_data_file_found_nowhere_names_every_place_looked(own, caplog, capsys):
    own.write_text(own.read_text().replace("- rows.jsonl", "- lost.jsonl"))
    with caplog.at_level(logging.WARNING):
        assert main(["validate", "--no-models", str(own)]) == 2
    said = caplog.text + capsys.readouterr().err
    assert str(own.parent / "lost.jsonl") in said  # beside the file
    assert os.path.abspath("lost.jsonl") in said  # the working directory


def test_a_pair_file_beside_the_file_is_found(own):
    """data.pairs (offline preference pairs) follows the same rule as the prompt sources."""
    body = yaml.safe_load(own.read_text())
    body["data"] = {"train": [], "pairs": "pairs.jsonl"}
    own.write_text(yaml.safe_dump(body))
    (own.parent / "pairs.jsonl").write_text("")
    pairs = load_experiment(own, ["method.name=dpo"]).data.pairs
    assert pairs == str(own.parent / "pairs.jsonl")
