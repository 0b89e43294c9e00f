"""benchmarks/step_profile.py and benchmarks/update_flops.py run: the first on a metrics file as
a run writes it, the second at a toy size. Figures are printed, never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(*args, code=0):
    done = subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == code, done.stderr[-3000:]
    return done


def test_step_profile_reads_a_run_directory(tmp_path):
    rows = [
        {
            "step": 1,
            "loss": 0.1,
            "time/rollout": 1.0,
            "time/verify": 2.0,
            "time/update": 1.0,
            "time/step": 4.0,
        },
        {
            "step": 2,
            "loss": 0.1,
            "time/rollout": 1.0,
            "time/verify": 0.5,
            "time/update": 2.5,
            "time/step": 4.0,
        },
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _run(BENCH / "step_profile.py", tmp_path, "--json", tmp_path / "p.json").stdout
    figures = json.loads((tmp_path / "p.json").read_text())[str(tmp_path)]
    assert figures["steps"] == 2 and figures["step_seconds"] == 8.0
    assert figures["phases"]["update"] == {
        "seconds": 3.5,
        "share": 0.4375,
        "first_step_s": 1.0,
        "mean_later_step_s": 2.5,
    }
    assert out.splitlines()[2].split()[0] == "update"  # the costliest phase first


def test_step_profile_names_a_bad_path(tmp_path):
    done = _run(BENCH / "step_profile.py", tmp_path / "nowhere", code=2)
    assert "nowhere: no such file or folder" in done.stderr and "Traceback" not in done.stderr
    done = _run(BENCH / "step_profile.py", tmp_path, code=2)
    assert "no metrics.jsonl there" in done.stderr


@pytest.mark.slow  # loads the tiny world's student and runs a few updates
def test_update_flops_prints_both_rates(tmp_path):
    _run(
        BENCH / "update_flops.py",
        "--rows",
        "8",
        "--prompt",
        "8",
        "--response",
        "8",
        "--repeats",
        "1",
        "--threads",
        "1",  # one: two OpenMP threads on a machine shared with other work can take 100x longer
        "--matmul",
        "256",
        "--kernels",
        "--json",
        tmp_path / "u.json",
    )
    figures = json.loads((tmp_path / "u.json").read_text())
    assert figures["update_gflop_per_s"] > 0 and figures["matmul_square_gflop_per_s"] > 0
    kernels = figures["kernel_seconds"]
    assert set(kernels) == {"matmul", "attention", "other operators"}
    assert all(v > 0 for v in kernels.values())
    # the products alone are faster than the whole update, so the ceiling is above its ratio
    assert (
        figures["ceiling_vs_matmul_square_if_only_matmuls_took_time"]
        > figures["update_vs_matmul_square"]
    )
    assert figures["real_tokens"] <= figures["padded_cells"] == 8 * 16
