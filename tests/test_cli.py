"""The command line as users run it: bad input exits 2 before any run directory exists, and the
whole pipeline (world build -> uniopd run -> uniopd eval) works on the `smoke` tiny world."""

import json
import shutil
from pathlib import Path

import pytest

from uniopd.commands.cli import main

EXPERIMENTS = Path(__file__).parent.parent / "experiments"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "overrides, expect",
    [
        (["train.lr=abc"], "train.lr"),
        (["trian.lr=1"], "unknown key 'trian'"),
        (["teachers.code=null"], "teachers.code"),
        (["method.name=distill"], "method.name"),
        (["notakeyvalue"], "notakeyvalue"),
    ],
)
def test_bad_overrides_exit_2_without_a_run_directory(workdir, capsys, overrides, expect):
    assert main(["run", "experiments/quickstart.yaml", *overrides]) == 2
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") <= 3
    assert not (workdir / "runs").exists()


def test_malformed_file_names_file_and_line(workdir, capsys):
    bad = workdir / "experiments" / "bad.yaml"
    bad.write_text("# bad.yaml\nbase: _tiny_world.yaml\nname: bad\ntrain:\n  steps: [1\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "line" in err
    assert not (workdir / "runs").exists()


def test_missing_teacher_for_a_data_domain(workdir, capsys):
    cfg = workdir / "experiments" / "one_teacher.yaml"
    cfg.write_text(
        "# one_teacher.yaml\nbase: _tiny_world.yaml\nname: one\n"
        "teachers: {math: builtin:teacher-math}\n"
    )
    # the base's code teacher is inherited, so drop it by naming a domain map without it
    text = (workdir / "experiments" / "_tiny_world.yaml").read_text()
    (workdir / "experiments" / "_tiny_world.yaml").write_text(
        text.replace("  code: builtin:teacher-code\n", "")
    )
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "teachers.code" in err and "missing teacher" in err and "builtin:code/train" in err
    assert not (workdir / "runs").exists()


def test_unknown_domain_in_a_data_file(workdir, capsys):
    rows = workdir / "chess.jsonl"
    rows.write_text(
        json.dumps({"prompt": "mate in one", "domain": "chess", "answer": "Qh7"}) + "\n"
    )
    assert main(["run", "experiments/quickstart.yaml", f"data.train=[{rows}]"]) == 2
    err = capsys.readouterr().err
    assert "unknown domain 'chess'" in err and "chess.jsonl" in err
    assert not (workdir / "runs").exists()


def test_broken_checkpoint_is_a_clear_error(workdir, capsys, make_checkpoint):
    broken = workdir / "broken"
    shutil.copytree(make_checkpoint(5), broken)
    (broken / "config.json").write_text("{not json")
    assert (
        main(["run", "experiments/quickstart.yaml", f"student={broken}", "output.progress=false"])
        == 2
    )
    assert "broken" in capsys.readouterr().err


@pytest.mark.world  # builds a smoke-sized tiny world
def test_smoke_world_end_to_end(workdir, monkeypatch, capsys):
    monkeypatch.setenv("UNIOPD_WORLD", "smoke")
    monkeypatch.setenv("UNIOPD_HOME", str(workdir / "home"))
    assert main(["world", "build"]) == 0
    manifest = json.loads(next((workdir / "home").glob("world-*/manifest.json")).read_text())
    by_name = {record["name"]: record for record in manifest["models"].values()}
    text = {"teacher-math", "teacher-code", "teacher-math-large", "student"}
    visual = {"student-visual", "teacher-visual", "teacher-visual-text"}
    assert set(by_name) == text | visual
    assert "grpo" in by_name["teacher-math"]  # experts went through domain GRPO
    assert "grpo" in by_name["teacher-visual"]
    args = [
        "experiments/quickstart.yaml",
        "train.steps=2",
        "eval.every=1",
        "eval.n_samples=1",
        "eval.pass_k=[1]",
        "eval.max_prompts_per_domain=2",
        "rollout.prompts_per_batch=2",
        "rollout.group_size=2",
        "rollout.max_new_tokens=8",
        "output.progress=false",
    ]
    assert main(["run", *args]) == 0
    run = workdir / "runs" / "quickstart"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run / "config.yaml").exists() and (run / "meta.json").exists()
    assert (
        main(
            [
                "eval",
                str(run),
                "output.progress=false",
                "eval.n_samples=1",
                "eval.pass_k=[1]",
                "eval.max_prompts_per_domain=2",
                "rollout.max_new_tokens=8",
            ]
        )
        == 0
    )
    assert "math: acc=" in capsys.readouterr().out
    # cross-modal: the image-text student's run, then its checkpoint (with its processor)
    # evaluated on the pictures
    small = [a for a in args[1:] if not a.startswith("eval.every")]
    assert main(["run", "experiments/multimodal/cross_modal.yaml", *small]) == 0
    run = workdir / "runs" / "mm-cross-modal"
    assert (run / "checkpoints" / "step_000002" / "processor_config.json").exists()
    assert (run / "images" / "index.json").exists()
    evaluate = [a for a in args[2:] if a.startswith(("eval.", "rollout.max", "output"))]
    assert main(["eval", str(run), *evaluate]) == 0
    assert "visual: acc=" in capsys.readouterr().out


def test_list_shows_every_registry_with_help_and_objective_options(capsys):
    from uniopd.data.sources import SOURCES
    from uniopd.objectives import OBJECTIVES
    from uniopd.strategies import CALIBRATORS, ONLINE_BALANCERS
    from uniopd.verifiers import VERIFIERS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    blocks = dict(b.split(" ", 1) for b in out.strip().split("\n\n"))
    registries = {
        "objectives": OBJECTIVES,
        "verifiers": VERIFIERS,
        "sources": SOURCES,
        "balancers": ONLINE_BALANCERS,
        "calibrators": CALIBRATORS,
    }
    assert list(blocks) == list(registries)
    for name, registry in registries.items():
        assert f"entry-point group {registry.group}" in blocks[name]
        for entry in registry.entries():
            line = next(row for row in blocks[name].splitlines() if row.split()[:1] == [entry.name])
            assert f"[{entry.origin}]" in line and " ".join(entry.help.split()) in line
    jsd = blocks["objectives"].split("\n  jsd ")[1].split("\n  reverse_kl ")[0]
    assert "kind: loss   needs: teacher_logits" in jsd
    assert "option beta=0.5  Mixture weight" in jsd and "option temperature=1.0" in jsd
    assert "kind: advantage   needs: teacher_logp\n" in blocks["objectives"].split("\n  opd ")[1]
    assert "builtin:<domain>/<split>" in blocks["sources"]

    assert main(["list", "objectives"]) == 0
    only = capsys.readouterr().out
    assert only.startswith("objectives (method.name;") and "\nverifiers " not in only


def test_a_broken_plugin_exits_2_naming_it(workdir, monkeypatch, capsys):
    # A real installed distribution as importlib.metadata finds it: a *.dist-info on sys.path whose
    # entry point names a module that fails to import.
    from uniopd.verifiers import VERIFIERS

    site = workdir / "site"
    (site / "broken_domain-0.1.dist-info").mkdir(parents=True)
    (site / "broken_domain-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-domain\nVersion: 0.1\n"
    )
    (site / "broken_domain-0.1.dist-info" / "entry_points.txt").write_text(
        "[uniopd.verifiers]\nchess = broken_domain_mod\n"
    )
    (site / "broken_domain_mod.py").write_text(
        "raise ImportError('no module named chess_engine')\n"
    )
    VERIFIERS.names()  # built-ins registered into the real entries before they are set aside
    monkeypatch.setattr(VERIFIERS, "_entries", dict(VERIFIERS._entries))  # restored afterwards
    monkeypatch.setattr(VERIFIERS, "_loaded", False)
    monkeypatch.syspath_prepend(str(site))

    assert main(["list", "verifiers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "uniopd: error: plugin 'chess' (broken_domain_mod, from broken-domain, "
        "entry-point group uniopd.verifiers) failed to load: ImportError: "
        "no module named chess_engine"
    )
    assert main(["list", "objectives"]) == 0  # other registries are unaffected
    capsys.readouterr()
    assert main(["run", "experiments/quickstart.yaml"]) == 2  # refused before any run directory
    assert "plugin 'chess'" in capsys.readouterr().err
    assert not (workdir / "runs").exists()


def test_fields_lists_the_options_of_registered_entries(capsys):
    from uniopd.commands.cli import main

    assert main(["fields"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert (
        "default=0.5" in rows["method.options.jsd.beta"]
        and "Mixture weight" in rows["method.options.jsd.beta"]
    )
    assert "default=32" in rows["method.options.topk.k"]
    assert "method.name" in rows and "calibration.strategy" in rows
