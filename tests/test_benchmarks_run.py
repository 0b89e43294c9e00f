"""The scale benchmarks run (at toy sizes on the CPU), so they do not rot between GPU sessions.
Their figures are printed, never asserted: speed and memory targets are read, not tested."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(*args):
    done = subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_gpu_step_benchmark_runs_its_steps_on_the_cpu(tmp_path):
    out = _run(BENCH / "gpu_step.py", "--tiny", "--json", tmp_path / "g.json")
    figures = json.loads((tmp_path / "g.json").read_text())
    assert len(figures["steps"]) == 2
    summary = figures["summary"]
    assert summary["rollouts"] == 8 and summary["update_tokens_per_s"] > 0
    assert "summary " in out


def test_logprob_memory_benchmark_reports_both_variants():
    out = _run(
        BENCH / "logprob_memory.py",
        "--vocab",
        "5000",
        "--tokens",
        "256",
        "--hidden",
        "32",
        "--chunk",
        "64",
    )
    assert "naive " in out and "chunked " in out and out.count("naive / chunked peak memory") == 2
