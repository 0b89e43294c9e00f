"""analysis/ runs as is: the notebook through a real Jupyter kernel, each script as a process, on
real tiny runs of OPD, Uni-OPD and GRPO."""

import subprocess
import sys
from pathlib import Path

import pytest

ANALYSIS = Path(__file__).resolve().parent.parent / "analysis"


@pytest.mark.slow  # a kernel and three training runs
def test_the_notebook_runs_through_a_kernel(method_runs, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("UNIOPD_RUNS", str(method_runs))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(ANALYSIS / "compare_methods.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {})) for o in outputs)
    assert "3 runs; 0 left out" in text
    for group in ("OPD", "Uni-OPD", "GRPO"):
        assert group in text
    assert "'convergence'" in text  # the figure was made and shown
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("script", ["order_vs_accuracy.py"])
def test_each_script_runs_as_is(script, method_runs, tmp_path):
    out = tmp_path / "figure.png"
    done = subprocess.run(
        [sys.executable, str(ANALYSIS / script), str(method_runs), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "math" in done.stdout and out.exists()
    missing = subprocess.run(
        [sys.executable, str(ANALYSIS / script), str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "no finished runs" in missing.stderr


@pytest.mark.slow
def test_balance_ratio_pools_no_other_method_into_its_baseline(method_runs):
    """OPD, Uni-OPD and GRPO are no ratio study: no ratio run, and Uni-OPD (balanced offline,
    calibrated) and GRPO are not a "none" baseline. The script runs on a ratio study in
    tests/test_honest_figures.py."""
    done = subprocess.run(
        [sys.executable, str(ANALYSIS / "balance_ratio.py"), str(method_runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "no finished runs of the ratio study" in done.stderr
