"""Figures and tables that say what they rest on (issue 28, item 3): seeds, steps and held-out
samples under every table and figure; one seed without ±; a tie without a bold "best"; a figure
whose variable does not vary not drawn but named; coinciding curves marked; the offline difficulty
estimate counted in a method's time; no default output into the shipped paper_figures/; exit 2
without runs; balance_ratio.py's baseline plain OPD only.

The runs are run directories written here in the format the trainer writes (config.yaml resolved
by the real schema, meta.json, metrics.jsonl, eval.jsonl, difficulty/estimate.json): the
analysis's input data, read back through load_runs as any run is."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from uniopd.analysis.make import _write_tables
from uniopd.analysis.objective_table import objective_markdown, objective_rows
from uniopd.analysis.runs import load_runs
from uniopd.analysis.tables import ablation_markdown, ablation_rows, benchmark_table
from uniopd.commands.cli import main

ROOT = Path(__file__).resolve().parent.parent
UNIOPD = {
    "balance": {"offline": {"mode": "balance"}, "online": {"enabled": True, "ratio": 1.0}},
    "calibration": {"margin_shift": True},
}


@pytest.fixture
def write_run(tiny_experiment):
    return lambda *args, **kwargs: _write_run(tiny_experiment, *args, **kwargs)


def _write_run(experiment, root: Path, name: str, finals: list[float], steps=4, **sections) -> Path:
    """A finished run: `finals` is its math accuracy per eval (steps 0, ..., `steps`, evenly),
    each over 5 prompts x 4 samples; every step took 2 s; `sections` override the config
    (offline_s=X writes difficulty/estimate.json; trial=STUDY makes it a sweep's trial)."""
    from uniopd.config import ExperimentConfig, save_resolved

    offline_s, trial = sections.pop("offline_s", None), sections.pop("trial", None)
    cfg = ExperimentConfig.model_validate(
        experiment(
            "builtin:student",
            {"math": "builtin:teacher-math"},
            ["builtin:math"],
            root,
            name=name,
            train={"steps": steps, "warmup_steps": 0},
            **sections,
        )
    )
    run = root / name
    run.mkdir(parents=True)
    save_resolved(cfg, run / "config.yaml")
    (run / "meta.json").write_text(json.dumps({"steps": steps}))
    rows = [
        {"step": s, "loss": 0.1, "reward": 0.5, "entropy": 1.0, "response_length": 5.0}
        | {"time/step": 2.0}
        for s in range(1, steps + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = [round(i * steps / (len(finals) - 1)) for i in range(len(finals))]
    evals = [
        {"step": s, "math": {"acc": a, "avg@4": a, "n_prompts": 5}} for s, a in zip(at, finals)
    ]
    (run / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    if offline_s is not None:
        (run / "difficulty").mkdir()
        (run / "difficulty" / "estimate.json").write_text(
            json.dumps({"seconds": 0.01, "sampled_seconds": offline_s})
        )
    if trial is not None:
        (run / "trial.json").write_text(json.dumps({"study": trial}))
    return run


def test_one_seed_has_no_plus_minus_and_a_tie_is_not_bold(tmp_path, write_run):
    write_run(tmp_path, "opd", [0.6, 0.8])
    write_run(tmp_path, "uni", [0.6, 0.8], **UNIOPD)
    write_run(tmp_path, "grpo", [0.6, 0.7], method={"name": "grpo"})
    runs = load_runs([tmp_path])
    md, tex = benchmark_table(runs, {})
    assert "| OPD | 1 | 80.0 |" in md and "| Uni-OPD | 1 | 80.0 |" in md
    assert "±" not in md and "pm" not in tex  # one seed: no spread to show
    assert "**" not in md and "textbf" not in tex  # OPD and Uni-OPD tie: no best
    objectives = objective_markdown(objective_rows(runs))
    assert "±" not in objectives and "**" not in objectives
    ablation = ablation_markdown(ablation_rows(runs, {}), {})
    assert "| uni | Uni-OPD | math<-teacher-math | 1 | 0.600 → 0.800 |" in ablation
    # the rules themselves: a tie at the written precision has no best; a lone value neither
    from uniopd.analysis.basis import pm, unique_best

    assert unique_best({"a": 0.8001, "b": 0.8}) is None
    assert unique_best({"a": 0.81, "b": 0.8}) == "a" and unique_best({"a": 0.8}) is None
    assert pm(0.8, 0.0, 1) == "0.800" and pm(0.8, 0.05, 3) == "0.800 ± 0.050"


def test_runs_of_different_dials_are_never_pooled_as_seeds(tmp_path, write_run):
    """The benchmark table keys its blocks by teacher setting and by the dials and regime the runs
    differ in: OPD at flaw 0 and at flaw 0.6 are two rows of one seed each, not one row of two
    "seeds" (study v1's table pooled 40 OPD runs of different dials); GRPO joins only its own
    world's block; two experiment files of one method in one block are a row each."""
    write_run(tmp_path, "opd-f0", [0.6, 0.8])
    write_run(tmp_path, "opd-f0.6", [0.6, 0.6], world={"teacher_flaw": 0.6})
    write_run(
        tmp_path, "grpo-f0.6", [0.6, 0.7], world={"teacher_flaw": 0.6}, method={"name": "grpo"}
    )
    for seed in (0, 1):
        write_run(tmp_path, f"opd-lr-s{seed}", [0.6, 0.9], seed=seed, world={"teacher_flaw": 0.6})
    md, _ = benchmark_table(load_runs([tmp_path]), {})
    rows = [line.strip("| ").split(" | ") for line in md.splitlines()[2:]]
    assert rows == [
        ["math<-teacher-math; flaw 0", "OPD", "1", "80.0"],
        ["math<-teacher-math; flaw 0.6", "OPD (opd-f0.6)", "1", "60.0"],
        ["math<-teacher-math; flaw 0.6", "OPD (opd-lr)", "2", "**90.0 ± 0.0**"],
        ["math<-teacher-math; flaw 0.6", "GRPO", "1", "70.0"],
    ]
    # one world: no dial named, as before
    one, _ = benchmark_table(load_runs([tmp_path / "opd-f0"]), {})
    assert "| math<-teacher-math | OPD | 1 | 80.0 |" in one
    # the convergence and dynamics figures draw the setting and world with the most runs only
    from uniopd.analysis.figures import fig_convergence, fig_dynamics

    runs = load_runs([tmp_path])
    flawed = ["grpo-f0.6", "opd-f0.6", "opd-lr-s0", "opd-lr-s1"]
    assert fig_convergence(runs, tmp_path / "figs", {}).runs == flawed
    assert fig_dynamics(runs, tmp_path / "figs", {}).runs == flawed


def test_every_table_states_seeds_steps_and_eval_samples(tmp_path, write_run):
    for seed in (0, 1):
        write_run(tmp_path / "runs", f"opd-s{seed}", [0.6, 0.8 + seed / 10], seed=seed)
    write_run(tmp_path / "runs", "grpo", [0.6, 0.7], method={"name": "grpo"})
    runs, out, manifest = load_runs([tmp_path / "runs"]), tmp_path / "out", {"tables": []}
    out.mkdir()
    _write_tables(runs, out, {}, None, manifest)
    for name in ("benchmark_table.md", "ablation_table.md", "objective_table.md"):
        text = (out / name).read_text()
        assert "1-2 seeds per experiment (n = 1 has no ±)" in text, name
        assert "4 training steps" in text and "math 5 prompts × 4 samples" in text, name
    assert "5 prompts $\\times$ 4 samples" in (out / "benchmark_table.tex").read_text()
    bench = {t["name"]: t for t in manifest["tables"]}["benchmark_table"]
    assert bench["basis"]["eval"] == {"math": ["5 prompts × 4 samples"]}
    assert bench["basis"]["steps"] == [4] and tuple(bench["basis"]["seeds"]) == (1, 2)


def test_a_dial_that_does_not_vary_draws_no_figure_and_is_named(tmp_path):
    """One teacher flaw and one deficit: the dial study's panels would show one value each (read
    as an effect); the figure is skipped and the reason given."""
    from test_analysis_study import cell, runs_of  # tests/ is on the path, as pytest runs

    from uniopd.analysis.study_figures import fig_dial_effects, fig_gain_vs_order

    runs = runs_of(
        cell("study-order-opd-f0", [0.5, 0.52], teacher_flaw=0.0, order=0.9),
        cell("study-order-uniopd-f0", [0.55, 0.5], teacher_flaw=0.0, order=0.8),
        cell("study-deficit-grpo-habit", [0.4, 0.6], method="grpo"),
    )
    why = getattr(fig_dial_effects(runs, tmp_path, {}), "why", "")  # Skipped(why)
    assert "teacher_flaw takes one value (0.0)" in why and "deficit takes one value" in why
    why = getattr(fig_gain_vs_order(runs, tmp_path, {}), "why", "")
    assert "teacher_flaw takes one value (0)" in why
    assert not list(tmp_path.iterdir())  # nothing drawn


@pytest.mark.slow  # draws the convergence figure (about 2 s)
def test_coinciding_curves_are_marked_and_the_offline_estimate_is_counted(tmp_path, write_run):
    write_run(tmp_path, "opd", [0.6, 0.7, 0.8])
    write_run(tmp_path, "uni", [0.6, 0.7, 0.8], offline_s=30.0, **UNIOPD)
    write_run(tmp_path, "grpo", [0.6, 0.65, 0.9], method={"name": "grpo"})
    runs = load_runs([tmp_path])
    from uniopd.analysis.figures import fig_convergence

    fig = fig_convergence(runs, tmp_path / "out", {})
    assert fig.note == "OPD = Uni-OPD (identical: one line hides the other)"
    assert fig.extra["offline_estimate"] is True
    # Uni-OPD's clock starts after its estimate: 30 s, then 4 steps of 2 s
    e = runs.evals.set_index(["run", "step"]).wall_s
    assert e[("uni", 0)] == 30.0 and e[("uni", 4)] == 38.0 and e[("opd", 4)] == 8.0
    table = objective_markdown(objective_rows(runs))
    head = next(line for line in table.splitlines() if line.startswith("| method"))
    assert head.endswith("| s / step | offline estimate s | training s (all phases) |")
    uni = next(line for line in table.splitlines() if line.startswith("| Uni-OPD"))
    assert uni.endswith("| 2.00 | 30.0 | 38 |")


def test_the_offline_estimate_is_counted_in_a_runs_time(tmp_path, write_run):
    write_run(tmp_path, "uni", [0.6, 0.8], offline_s=30.0, **UNIOPD)
    write_run(tmp_path, "old-uni", [0.6, 0.8], **UNIOPD)  # from before estimate.json
    write_run(tmp_path, "opd", [0.6, 0.8])
    runs = load_runs([tmp_path])
    offline = runs.info.set_index("run").offline_s
    assert offline["uni"] == 30.0 and offline["opd"] == 0.0 and math.isnan(offline["old-uni"])
    last = runs.metrics.groupby("run").wall_s.max()
    assert last["uni"] == 38.0 and last["opd"] == 8.0
    rows = {r["experiment"]: r for r in objective_rows(runs)}
    assert rows["uni"]["total_s"][0] == 38.0 and rows["opd"]["total_s"][0] == 8.0
    table = objective_markdown(list(rows.values()))
    assert "| not recorded |" in table  # old-uni: the estimate's cost is unknown, said so


def test_figures_refuses_to_default_into_the_shipped_figures(
    tmp_path, write_run, monkeypatch, capsys
):
    write_run(tmp_path, "opd", [0.6, 0.8])
    shipped = ROOT / "paper_figures"
    before = sorted(p.name for p in shipped.iterdir())
    monkeypatch.chdir(shipped)
    assert main(["figures", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in shipped.iterdir()) == before  # nothing written there


def test_figures_and_report_exit_2_without_runs(tmp_path, write_run, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    killed = write_run(tmp_path / "killed", "opd", [0.6, 0.8])
    (killed / "metrics.jsonl").write_text('{"step": 1, "loss": 0.1, "time/step": 2.0}\n')
    for command in ("figures", "report"):
        for root, said in (
            ("/nonexistent", "no such folder: /nonexistent"),
            ("empty", "no finished runs in empty (none found)"),
            ("killed", "no finished runs in killed (1 found, none finished)"),
        ):
            assert main([command, root]) == 2, (command, root)
            err = capsys.readouterr().err
            assert said in err, (command, err)
    assert "unfinished: logged 1 of 4 steps" in err  # the run found is named with why
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "killed"]  # nothing written


def _balance_ratio():
    spec = importlib.util.spec_from_file_location(
        "balance_ratio", ROOT / "analysis/balance_ratio.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ratio_study(write_run, root: Path) -> None:
    """r = 0.5 and r = 1 on plain OPD, plain OPD as the baseline; and what must not join it:
    GRPO, Uni-OPD, a sweep's plain-OPD trial and a plain OPD run of another budget."""
    online = lambda r: {"balance": {"online": {"enabled": True, "ratio": r}}}  # noqa: E731
    write_run(root, "r0.5", [0.6, 0.8], **online(0.5))
    write_run(root, "r1", [0.6, 0.85], **online(1.0))
    write_run(root, "none-s0", [0.6, 0.7])
    write_run(root, "none-s1", [0.6, 0.72], seed=1)
    write_run(root, "grpo", [0.6, 0.1], method={"name": "grpo"})
    write_run(root, "uni", [0.6, 0.1], **UNIOPD)
    write_run(root, "trial-0000", [0.6, 0.1], trial="online-ratio")
    write_run(root, "longer", [0.6, 0.1], steps=8)


def test_balance_ratio_baseline_is_plain_opd_of_the_same_regime(tmp_path, write_run):
    ratio_study(write_run, tmp_path)
    df, rests_on = _balance_ratio().table([str(tmp_path)])
    none = df[df.ratio == "none"].iloc[0]
    assert none.n == 2 and none["mean"] == pytest.approx(0.71)
    assert df[df.ratio == "1"].iloc[0].n == 1 and math.isnan(df[df.ratio == "1"].iloc[0]["std"])
    assert "Rests on 4 runs" in rests_on


@pytest.mark.slow  # a process that imports pandas, seaborn and draws (about 5 s)
def test_balance_ratio_runs_as_a_script_on_a_ratio_study(tmp_path, write_run):
    ratio_study(write_run, tmp_path / "runs")
    out = tmp_path / "ratio.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "analysis/balance_ratio.py"), str(tmp_path / "runs")]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "none" in done.stdout and "Rests on 4 runs" in done.stdout and out.exists()


@pytest.mark.slow  # the session's real OPD, Uni-OPD and GRPO runs (shared with analysis/ tests)
def test_a_real_uniopd_run_records_its_offline_estimate(method_runs):
    """The trainer's run directory says what the estimate cost (difficulty/estimate.json), the
    cache remembers what sampling took, and analysis starts the run's clock after it."""
    record = json.loads((method_runs / "uniopd" / "difficulty" / "estimate.json").read_text())
    assert record["sampled_seconds"] > 0 and record["seconds"] >= record["sampled_seconds"]
    runs = load_runs([method_runs])
    offline = runs.info.set_index("run").offline_s
    assert offline["uniopd"] == record["sampled_seconds"] and offline["opd"] == 0.0
    start = runs.evals[runs.evals.step == 0].set_index("run").wall_s
    assert start["uniopd"] == record["sampled_seconds"] and start["opd"] == 0.0


def test_runs_of_worlds_that_differ_only_in_a_v6_dial_are_not_pooled():
    """World v6's latent difficulty and horizon change what a run can reach: a baseline from
    another horizon must not be averaged into a comparison (uniopd.analysis.cells.alike)."""
    import pandas as pd

    from uniopd.analysis.cells import alike

    world = {"world_version": 6, "teacher_flaw": 0.0, "deficit": "habit", "epochs": 4, "steps": 30}
    rows = [
        {**world, "latent_difficulty": True, "horizon": 8, "run": "far"},
        {**world, "latent_difficulty": True, "horizon": None, "run": "near"},
        {**world, "latent_difficulty": False, "horizon": 8, "run": "plain"},
    ]
    sel = pd.DataFrame(rows)
    ref = sel.iloc[[0]]
    assert alike(sel, ref).run.tolist() == ["far"]


def test_preference_methods_are_compared_after_rl(tmp_path, write_run):
    """DPO and Omni-DPO (and an ablation of it) join the comparison from uniopd.labels' list:
    after GRPO in every table, drawn in the convergence figure (in labels' colours)."""
    from uniopd.analysis.figures import fig_convergence

    omni = {"omni_dpo": {"score": "verifier"}}
    write_run(tmp_path, "omni", [0.6, 0.75], method={"name": "omni_dpo", "options": omni})
    no_qual = {"omni_dpo": {"score": "verifier", "quality_weight": False}}
    write_run(tmp_path, "omni-nq", [0.6, 0.74], method={"name": "omni_dpo", "options": no_qual})
    write_run(tmp_path, "dpo", [0.6, 0.72], method={"name": "dpo"})
    write_run(tmp_path, "grpo", [0.6, 0.7], method={"name": "grpo"})
    write_run(tmp_path, "opd", [0.6, 0.8])
    runs = load_runs([tmp_path])
    md, _ = benchmark_table(runs, {})
    listed = [line.split(" | ")[1] for line in md.splitlines()[2:]]
    assert listed == ["OPD", "GRPO", "DPO", "Omni-DPO"]  # the ablation is not the method
    rows = objective_rows(runs)
    assert [r["method"] for r in rows] == ["OPD", "GRPO", "DPO", "Omni-DPO", "Omni-DPO w/o w_qual"]
    ablation = [r["group"] for r in ablation_rows(runs, {})]
    assert ablation == ["OPD", "GRPO", "DPO", "Omni-DPO", "Omni-DPO w/o w_qual"]
    figure = fig_convergence(runs, tmp_path / "figs", {})
    assert {"omni", "dpo", "grpo", "opd"} <= set(figure.runs) and "omni-nq" not in figure.runs


def test_runs_that_never_evaluated_make_no_figure_and_no_traceback(tmp_path, write_run, capsys):
    """Runs without eval.jsonl (eval.after off, eval.every 0) still load; the figures that need
    evaluations are left out instead of a KeyError from an eval table with no columns. One that
    should have evaluated last is left out saying so, not "logged 4 of 4 steps"."""
    quiet = {"eval": {"after": False, "every": 0}}
    for name in ("opd", "uni"):
        extra = quiet if name == "opd" else {**UNIOPD, **quiet}
        run = write_run(tmp_path / "runs", name, [0.6, 0.8], **extra)
        (run / "eval.jsonl").unlink()
    (write_run(tmp_path / "runs", "cut", [0.6, 0.8]) / "eval.jsonl").unlink()
    assert main(["figures", str(tmp_path / "runs"), "--out", str(tmp_path / "figs")]) == 0
    assert "cut: unfinished: no final evaluation at step 4" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "figs" / "manifest.json").read_text())
    drawn = {f["name"] for f in manifest["figures"]}
    assert "convergence" not in drawn and "dynamics" in drawn  # metrics are there, evals not


def test_describe_runs_get_a_hallucination_table(tmp_path, write_run):
    """SENTINEL's comparison: CHAIR_i / CHAIR_s (lower is better, so the lowest is bold), recall,
    the describe outcome and counting, per method over seeds, the student before training first."""
    chair = {"opd": [0.10, 0.12], "cdpo": [0.05, 0.07]}
    for name, values in chair.items():
        for seed, ci in enumerate(values):
            method = {} if name == "opd" else {"method": {"name": "cdpo"}}
            run = write_run(tmp_path / "runs", f"{name}-s{seed}", [0.5, 0.6], seed=seed, **method)
            evals = [
                {"step": s, "describe": {"acc": a, "avg@4": a, "n_prompts": 5} | figures}
                for s, a, figures in (
                    (0, 0.5, {"chair_i": 0.14, "chair_s": 0.42, "recall": 0.97}),
                    (4, 0.6, {"chair_i": ci, "chair_s": 3 * ci, "recall": 0.9}),
                )
            ]
            (run / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    assert main(["figures", str(tmp_path / "runs"), "--out", str(tmp_path / "figs")]) == 0
    table = (tmp_path / "figs" / "hallucination_table.md").read_text()
    lines = table.splitlines()
    assert lines[2].startswith("| student before training | 4 | 0.140 ± 0.000 | 0.420 ± 0.000 |")
    assert lines[3].startswith("| OPD | 2 | 0.110 ± 0.014 |")
    assert lines[4].startswith("| C-DPO | 2 | **0.060 ± 0.014** | **0.180 ± 0.042** |")
    assert "count acc" in lines[0] and "—" in lines[3]  # no counting figure logged: a dash
    assert "Rests on 4 runs" in table
