"""Figures, tables and the HTML report from a small set of real runs made here (tiny steps)."""

import json
import re
import shutil
import subprocess

import pytest

from uniopd.commands.cli import main

pytestmark = pytest.mark.slow  # trains a small study of real runs first

TINY = [
    "train.steps=4",
    "train.warmup_steps=0",
    "eval.every=2",
    "eval.n_samples=2",
    "eval.pass_k=[1,2]",
    "eval.max_prompts_per_domain=3",
    "rollout.group_size=4",
    "rollout.prompts_per_batch=2",
    "rollout.max_new_tokens=8",
    "data.limit=8",
    "output.progress=false",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory, coin):
    """OPD, Uni-OPD, GRPO, online-ratio and filtering cells on the coin task (mixed groups for
    certain), 2 seeds of the first three, plus a killed run that must be reported and left out."""
    import os

    root = tmp_path_factory.mktemp("study")
    before = os.environ.get("UNIOPD_HOME")
    os.environ["UNIOPD_HOME"] = str(root / "home")
    base = [
        f"student={coin['student']}",
        f"teachers.math={coin['teacher']}",
        f"data.train=[{coin['data']}]",
        f"data.eval=[{coin['data']}]",
        f"output.root={root / 'runs'}",
        *TINY,
    ]
    cells = {
        "opd": [],
        "uniopd": [
            "balance.offline.mode=balance",
            "balance.offline.n_samples=2",
            "balance.online.enabled=true",
            "calibration.margin_shift=true",
        ],
        "grpo": ["method.name=grpo"],
        "online_r0.5": ["balance.online.enabled=true", "balance.online.ratio=0.5"],
        "online_correct_only": ["balance.online.enabled=true", "balance.online.ratio=inf"],
        "drop_all_wrong": ["balance.offline.mode=drop_all_wrong", "balance.offline.n_samples=2"],
    }
    for cell, extra in cells.items():
        for seed in (0, 1) if cell in ("opd", "uniopd", "grpo") else (0,):
            assert (
                main(
                    [
                        "run",
                        f"experiments/ablations/{cell}.yaml",
                        *base,
                        *extra,
                        f"seed={seed}",
                        f"name=t-{cell}-s{seed}",
                    ]
                )
                == 0
            )
    # a run killed after 2 of 4 steps
    killed = root / "runs" / "t-opd-s9"
    shutil.copytree(root / "runs" / "t-opd-s0", killed)
    lines = (killed / "metrics.jsonl").read_text().splitlines()[:2]
    (killed / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 3, "lo')
    # the module's other tests and the rest of the session see the home they had
    if before is None:
        os.environ.pop("UNIOPD_HOME")
    else:
        os.environ["UNIOPD_HOME"] = before
    return root


def test_figures_tables_and_manifest(study, tmp_path, capsys):
    out = tmp_path / "paper_figures"
    assert main(["figures", str(study / "runs"), "--teacher", "math=0.5", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    names = {f["name"] for f in manifest["figures"]}
    assert names == {
        "difficulty_histograms",
        "online_ratio",
        "filtering",
        "order_heatmap",
        "order_over_training",
        "convergence",
        "dynamics",
    }
    for f in manifest["figures"]:
        for file in f["files"]:
            assert (out / file).stat().st_size > 5000, file  # a real rendering, PNG and PDF
        assert f["runs"]
    assert [x["run"].endswith("t-opd-s9") for x in manifest["left_out"]] == [True]
    assert "unfinished" in manifest["left_out"][0]["why"]
    assert "left out" in capsys.readouterr().err
    bench = (out / "benchmark_table.md").read_text()
    assert all(m in bench for m in ("| OPD |", "| Uni-OPD |", "| GRPO |", "| teacher |"))
    # the one best method is bold; a tie at the written precision has no best
    cells = {
        row.split("|")[2].strip(): row.split("|")[4].strip()
        for row in bench.splitlines()
        if row.startswith("| ") and not row.startswith("| setting") and "| teacher |" not in row
    }
    shown = {method: float(cell.strip("*").split()[0]) for method, cell in cells.items()}
    leaders = [m for m, v in shown.items() if v == max(shown.values())]
    bold = [m for m, cell in cells.items() if cell.startswith("**")]
    assert bold == (leaders if len(leaders) == 1 else []), bench
    assert "\\begin{tabular}" in (out / "benchmark_table.tex").read_text()
    ablation = (out / "ablation_table.md").read_text()
    # the killed run is not in any mean: t-opd has 2 seeds, not 3
    assert re.search(r"\| t-opd \| OPD \| [^|]+ \| 2 \|", ablation)


def test_objective_table_into_a_results_page(study, tmp_path, capsys):
    page = tmp_path / "results.md"
    page.write_text(
        "# Results\n<!-- objective-table:start -->\nold\n<!-- objective-table:end -->\ntail\n"
    )
    out = tmp_path / "figs"
    assert main(["figures", str(study / "runs"), "--out", str(out), "--results", str(page)]) == 0
    table = (out / "objective_table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    # OPD first, GRPO last (the usual order), 2 seeds each with both per-seed values shown
    assert rows[0].startswith("| OPD | t-opd | 2 |") and rows[-1].startswith(
        "| GRPO | t-grpo | 2 |"
    )
    assert re.search(r"\d\.\d{3} ± \d\.\d{3}\**\ \(\d\.\d{3}, \d\.\d{3}\)", rows[0])
    # seconds per step; OPD estimates no difficulty; the whole run's seconds
    assert re.search(r"\| \d+\.\d\d ± \d+\.\d\d \| — \| \d+ ± \d+ \|$", rows[0])
    uni = next(row for row in rows if row.startswith("| Uni-OPD"))
    assert re.search(r"\| \d+\.\d ± \d+\.\d \| \d+ ± \d+ \|$", uni)  # its estimate counted
    assert "Rests on " in table and "training steps" in table
    text = page.read_text()
    assert table in text and "old" not in text and text.endswith("tail\n")
    # a page without the markers is bad input: exit 2, page untouched
    bare = tmp_path / "bare.md"
    bare.write_text("# nothing to fill\n")
    assert main(["figures", str(study / "runs"), "--out", str(out), "--results", str(bare)]) == 2
    assert (
        bare.read_text() == "# nothing to fill\n" and "objective-table" in capsys.readouterr().err
    )


def test_report_loads_in_headless_chromium_without_console_errors(study, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed for this test (.ci/run installs it)"
    page = tmp_path / "report.html"
    assert main(["report", str(study / "runs"), "--teacher", "math=0.5", "--out", str(page)]) == 0
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: no network
    done = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    dom = done.stdout
    assert 'data-ready="yes"' in dom  # the page's script ran to the end
    for method in ("OPD", "Uni-OPD", "GRPO"):
        assert f"<td>{method}</td>" in dom or f"<td><b>{method}</b></td>" in dom
    assert dom.count("<img") == 7 and "t-opd-s9" in dom  # every figure; the left-out run is named


@pytest.mark.sweep  # a grid sweep of four trials
def test_sweep_figure_from_a_real_sweep(tiny_experiment, coin, tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNIOPD_HOME", str(tmp_path / "home"))
    base = tmp_path / "b.yaml"
    base.write_text(
        "# b.yaml — sweep figure test\n"
        + yaml.safe_dump(
            tiny_experiment(
                coin["student"],
                coin["teacher"],
                {"train": [str(coin["data"])], "eval": [str(coin["data"])]},
                None,
                name="b",
                rollout={"group_size": 4, "max_new_tokens": 8},
                eval={"every": 1, "max_prompts_per_domain": None},
                calibration={"margin_shift": True},
            )
        )
    )
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "fig",
                "base": "b.yaml",
                "output": str(tmp_path / "sweeps"),
                "space": {
                    "calibration.delta": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5},
                    "calibration.mode": {"type": "categorical", "choices": ["mean", "minmax"]},
                },
                "sampler": {"kind": "grid"},
                "objective": {"metric": "eval.math.acc"},
                "pruner": {"kind": "none"},
            }
        )
    )
    assert main(["sweep", str(sweep)]) == 0
    out = tmp_path / "figs"
    assert (
        main(
            [
                "figures",
                str(tmp_path / "sweeps"),
                "--sweeps",
                str(tmp_path / "sweeps"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert "sweep_fig" in {f["name"] for f in manifest["figures"]}
    assert (out / "sweep_fig.png").stat().st_size > 5000
