"""Every process works: the offline difficulty estimate and the held-out evaluation are shared out
over a run's processes, give what one process gives, and no process waits in a collective longer
than the experiment's distributed_timeout_s."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from uniopd.config import ExperimentConfig
from uniopd.launch.multiprocess import launch_command

DP = Path(__file__).parent / "dp"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
PROMPTS, SAMPLES = 32, 16  # 512 rows: two chunks (uniopd.loop.evaluate.CHUNK_ROWS), one each
TIMEOUT_S = 10.0
SECONDS_PER_ROW = 0.025  # 6.4 s per chunk: one process alone would sample for 12.8 s


def test_distributed_timeout_is_a_run_setting_with_the_old_default(tiny_experiment):
    base = tiny_experiment("s", "t", ["builtin:math/train"], None)
    assert ExperimentConfig.model_validate(base).distributed_timeout_s == 7200
    cfg = ExperimentConfig.model_validate({**base, "distributed_timeout_s": 30})
    assert cfg.distributed_timeout_s == 30
    with pytest.raises(ValueError, match="distributed_timeout_s"):
        ExperimentConfig.model_validate({**base, "distributed_timeout_s": 0})


def _experiment(tiny_experiment, tmp_path, coin, name):
    """The coin task with 32 prompts, balanced offline and evaluated on 16 samples each."""
    rng = random.Random(1)
    data = tmp_path / "coin32.jsonl"
    rows = [
        {"id": f"coin-{i}", "domain": "math", "prompt": f"Coin {i}: is it 1 or 2?"}
        | {"answer": str(rng.choice([1, 2]))}
        for i in range(PROMPTS)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tiny_experiment(
        coin["student"],
        coin["teacher"],
        {"train": [str(data)], "eval": [str(data)]},
        tmp_path / "runs",
        name=name,
        seed=5,
        rollout={"max_new_tokens": 8},
        balance={"offline": {"mode": "balance", "n_samples": SAMPLES}},
        eval={"n_samples": SAMPLES, "max_prompts_per_domain": PROMPTS, "pass_k": [1, 4]},
        tracking={"wandb": "disabled"},
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(nproc, script, args, home):
    cmd = [str(DP / script), *map(str, args)]
    cmd = [sys.executable, *cmd] if nproc == 1 else launch_command(nproc, [])[:-2] + cmd
    env = {**ENV, "UNIOPD_HOME": str(home)}  # each run its own difficulty cache: both sample
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow  # starts real process groups
def test_two_processes_share_a_slow_evaluation_and_score_what_one_does(
    tiny_experiment, tmp_path, coin
):
    """Rank 0 alone would sample for longer than the timeout, in the difficulty estimate and in
    the evaluation each: the run passes only if both are shared out. Each chunk has a seed of its
    own, so the 2-process results are the 1-process ones, sample for sample."""
    assert PROMPTS * SAMPLES * SECONDS_PER_ROW > TIMEOUT_S
    exp = _experiment(tiny_experiment, tmp_path, coin, "one")
    one = _run(1, "shared_eval.py", [exp, TIMEOUT_S, 0], tmp_path / "h1")
    assert one.returncode == 0, one.stderr[-3000:]
    exp = _experiment(tiny_experiment, tmp_path, coin, "two")
    started = time.time()
    two = _run(2, "shared_eval.py", [exp, TIMEOUT_S, SECONDS_PER_ROW], tmp_path / "h2")
    print(f"2 processes: {time.time() - started:.1f} s")
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = tmp_path / "runs" / "one", tmp_path / "runs" / "two"

    table = (a / "difficulty" / "table.csv").read_text()
    assert (b / "difficulty" / "table.csv").read_text() == table
    counts = [int(line.split(",")[3]) for line in table.splitlines()[1:]]
    assert len(set(counts)) > 2  # pass counts that differ between prompts, not all 0 or all 16
    assert (b / "difficulty" / "items.json").read_text() == (
        a / "difficulty" / "items.json"
    ).read_text()
    assert len(list((tmp_path / "h2" / "difficulty").iterdir())) == 1  # cached once

    summary_a, summary_b = _lines(a / "eval.jsonl"), _lines(b / "eval.jsonl")
    for s in (summary_a[0], summary_b[0]):
        s.pop("seconds")
    assert summary_b == summary_a
    assert 0.2 < summary_a[0]["math"]["acc"] < 0.8 and summary_a[0]["math"]["n_prompts"] == PROMPTS
    samples = _lines(a / "eval" / "step_000000.jsonl")
    assert _lines(b / "eval" / "step_000000.jsonl") == samples
    assert len(samples) == PROMPTS * SAMPLES and len({s["completion"] for s in samples}) > 2


@pytest.mark.slow  # starts real process groups
def test_a_process_stalled_past_the_timeout_stops_the_run(tiny_experiment, tmp_path):
    """The experiment's distributed_timeout_s reaches the process group: a process waiting for a
    stalled first one gives up after it (not after 2 hours), and the launcher stops the run."""
    cfg = tiny_experiment("s", "t", ["builtin:math/train"], None, distributed_timeout_s=TIMEOUT_S)
    exp = tmp_path / "stall.yaml"
    exp.write_text(yaml.safe_dump(cfg))
    started = time.time()
    done = _run(2, "stall.py", [exp, 90], tmp_path / "home")
    took = time.time() - started
    print(f"stopped after {took:.1f} s")
    assert done.returncode != 0
    # gloo's words, with the experiment's timeout in them
    assert f"Timed out waiting {TIMEOUT_S * 1000:.0f}ms" in done.stderr, done.stderr[-3000:]
    assert took < 60  # not the 90 s stall
