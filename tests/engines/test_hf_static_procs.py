"""`rollout.engine: hf-static-procs` beyond the engine contract (which it passes like every engine):
its worker processes outlive a scheduler's signals, a worker that dies costs the run nothing but
speed, and closing the engine ends them. Real 2-layer Qwen2 checkpoints and real processes."""

from __future__ import annotations

import logging
import os
import signal

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from uniopd.engine.rollout import EngineOptions, make_engine
from uniopd.engine.sampling import resolve_sampling

pytestmark = pytest.mark.slow  # each engine starts a worker process (about a second idle)


@pytest.fixture
def engine(make_checkpoint):
    path = make_checkpoint(43)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    engine = make_engine("hf-static-procs", model, tok, EngineOptions(processes=2))
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in ("Ana has", "f(x) =")] * 4
    yield engine, prompts, resolve_sampling(tok, model, max_new_tokens=6)
    engine.close()


def _worker(engine):
    (proc,) = engine._pool.procs
    return proc


def test_a_sigterm_to_the_workers_does_not_stop_the_rollout(engine, caplog):
    engine, prompts, s = engine
    torch.manual_seed(0)
    first = engine.generate(prompts, s)
    worker = _worker(engine)
    os.kill(worker.pid, signal.SIGTERM)
    os.kill(worker.pid, signal.SIGUSR1)
    with caplog.at_level(logging.WARNING):
        torch.manual_seed(0)
        again = engine.generate(prompts, s)
    assert worker.is_alive() and not caplog.records
    assert again.responses == first.responses  # same seed, same processes: same samples


def test_a_killed_worker_costs_its_rows_nothing_and_the_run_goes_on_in_one_process(engine, caplog):
    engine, prompts, s = engine
    engine.generate(prompts, s)
    worker = _worker(engine)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=10)
    with caplog.at_level(logging.WARNING):
        gen = engine.generate(prompts, s)
    assert len(gen.responses) == len(prompts) and all(gen.responses)
    (record,) = caplog.records
    assert "ended with exit code -9" in record.getMessage()
    assert "decodes in this process from now on" in record.getMessage()
    assert engine._pool is None
    assert len(engine.generate(prompts, s).responses) == len(prompts)


def test_closing_the_engine_ends_its_workers(engine):
    engine, prompts, s = engine
    engine.generate(prompts, s)
    worker = _worker(engine)
    engine.close()
    assert not worker.is_alive()


def test_a_lora_student_is_refused_at_planning():
    from uniopd.engine.rollout import engine_problems

    assert engine_problems("hf-static-procs", sharded=False) == []
    (why,) = engine_problems("hf-static-procs", sharded=False, lora=True)
    assert "LoRA" in why and "hf-static" in why


def test_the_workers_sample_in_the_callers_autocast_precision(make_checkpoint):
    path = make_checkpoint(44)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in ("Ana has", "f(x) =")] * 2
    s = resolve_sampling(tok, model, max_new_tokens=6, top_k=1)  # one candidate a step
    here = make_engine("hf-static", model, tok)
    procs = make_engine("hf-static-procs", model, tok, EngineOptions(processes=2))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_here, bf16_procs = here.generate(prompts, s), procs.generate(prompts, s)
        fp32_here = here.generate(prompts, s)
    finally:
        procs.close()
    last = len(prompts) - 1  # a row the worker decoded
    gap = lambda a, b: max(abs(x - y) for x, y in zip(a.logprobs[last], b.logprobs[last]))  # noqa: E731
    assert bf16_procs.responses == bf16_here.responses
    assert gap(bf16_procs, bf16_here) < 0.1 * gap(fp32_here, bf16_here)


def test_an_error_here_mid_rollout_leaves_no_part_of_it_for_the_next_call(engine):
    engine, prompts, s = engine
    torch.manual_seed(0)
    expected = engine.generate(prompts, s)
    here = engine._decode_here

    def failing(sampling):
        def decode(rows, seed):
            raise KeyboardInterrupt  # while the worker decodes its part

        return decode

    engine._decode_here = failing
    with pytest.raises(KeyboardInterrupt):
        engine.generate(prompts, s)
    engine._decode_here = here
    torch.manual_seed(0)
    assert engine.generate(prompts, s).responses == expected.responses
