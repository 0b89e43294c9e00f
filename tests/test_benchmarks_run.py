"""The scale benchmarks run (at toy sizes on the CPU), so they do not rot between GPU sessions.
Their figures are printed, never asserted: speed and memory targets are read, not tested."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(*args):
    done = subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # a benchmark script in a fresh Python process
def test_gpu_step_benchmark_runs_its_steps_on_the_cpu(tmp_path):
    out = _run(BENCH / "gpu_step.py", "--tiny", "--json", tmp_path / "g.json")
    figures = json.loads((tmp_path / "g.json").read_text())
    assert len(figures["steps"]) == 2
    summary = figures["summary"]
    assert summary["rollouts"] == 8 and summary["update_tokens_per_s"] > 0
    assert "summary " in out


@pytest.mark.slow  # a benchmark script in a fresh Python process
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


@pytest.mark.world  # three training loops end to end (TRL's among them) on the tiny world
def test_vs_trl_benchmark_runs_all_three_loops_interleaved(tmp_path):
    out = _run(BENCH / "vs_trl.py", "--tiny", "--json", tmp_path / "v.json")
    figures = json.loads((tmp_path / "v.json").read_text())
    systems = figures["systems"]
    assert set(systems) == {"uniopd", "trl-dist", "trl-gkd"}
    for r in systems.values():
        assert r["samples_per_s"] > 0 and len(r["step_seconds"]) == 1
        assert r["generated_rows_per_step"] == 4  # 2 prompts x 2 samples, sampled in the step
        assert r["sampling_processors"] == ["(none)"]  # temperature 1, top-p 1, no top-k
    assert set(figures["summary"]["ratios"]) == {"uniopd/trl-dist", "uniopd/trl-gkd"}
    notes = figures["summary"]["notes"]
    assert sum(n.endswith("prompt token ids == uniopd's: True") for n in notes) == 2
    assert "ratio uniopd/trl-dist" in out and "summary " in out


@pytest.mark.slow  # a benchmark script in a fresh Python process
def test_teacher_server_benchmark_scores_through_a_real_server(tmp_path):
    out = _run(BENCH / "teacher_server.py", "--tiny", "--json", tmp_path / "t.json")
    figures = json.loads((tmp_path / "t.json").read_text())
    assert figures["failed_rows"] == 0 and figures["max_abs_diff"] < 1e-4
    assert figures["served"]["rows_per_s"] > 0 and figures["in_process"]["rows_per_s"] > 0
    assert "served / in-process throughput" in out


@pytest.mark.slow  # a benchmark script in a fresh Python process
def test_rollout_speed_benchmark_times_hf_and_hf_paged(tmp_path):
    out = _run(BENCH / "rollout_speed.py", "--tiny", "--json", tmp_path / "r.json")
    figures = json.loads((tmp_path / "r.json").read_text())
    assert set(figures["tokens_per_s"]) == {"hf", "hf-paged"} and figures["rollouts"] == 4
    assert "summary " in out


@pytest.mark.slow  # a benchmark script in a fresh Python process
def test_grading_benchmarks_grade_and_regrade(tmp_path):
    out = json.loads(_run(BENCH / "grading_throughput.py", "--programs", "16", "--rounds", "1"))
    assert out["programs"] == 16 and out["programs_per_s"][0] > 0
    assert 0.3 < out["pass_rate"][0] < 0.8  # half reference solutions, half one step short
    # regrade: logged rows of a run directory, graded again; nothing changes for these
    from uniopd.tasks.builtin import builtin_problems

    problem = builtin_problems("code", "test")[0]
    rows = [
        {"prompt_id": problem.id, "domain": "code", "completion": problem.solution, "reward": 1.0},
        {"prompt_id": problem.id, "domain": "code", "completion": "no code", "reward": 0.0},
    ]
    (tmp_path / "run" / "eval").mkdir(parents=True)
    (tmp_path / "run" / "eval" / "step_000000.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    again = json.loads(_run(BENCH / "regrade.py", tmp_path / "run"))
    assert (again["rows"], again["changed"]) == (2, 0)
    # as the loop grades: a repeated row shares its first copy's verdict, which is unchanged
    rows.append(rows[0])
    (tmp_path / "run" / "eval" / "step_000000.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    batched = json.loads(_run(BENCH / "regrade.py", tmp_path / "run", "--batched"))
    assert (batched["rows"], batched["changed"], batched["batched"]) == (3, 0, True)


@pytest.mark.slow  # a benchmark script in a fresh Python process
def test_board_cost_benchmark_times_the_mirror():
    out = _run(BENCH / "board_cost.py", "--steps", "20")
    mirror = json.loads(out.splitlines()[0])["mirror"]
    assert mirror["steps"] == 20 and mirror["per_step_ms_median"] > 0


@pytest.mark.slow  # a benchmark script in a fresh Python process
def test_teacher_topk_benchmark_times_both_layouts():
    out = _run(BENCH / "teacher_topk.py", "--rows", "8", "--k", "4", "--rounds", "2")
    assert "8 rows" in out and "own layout: median" in out and "length buckets: median" in out
