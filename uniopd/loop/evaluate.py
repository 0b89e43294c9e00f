"""Held-out evaluation: accuracy per domain as avg@N, pass@k, and per-sample records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from evalplus.eval import estimate_pass_at_k
from tqdm.auto import tqdm

from uniopd.engine.prompts import PromptFormat
from uniopd.engine.rollout import RolloutEngine, make_engine
from uniopd.engine.sampling import resolve_sampling
from uniopd.engine.vision import encode_inputs, image_token_ids
from uniopd.tasks.problem import Problem
from uniopd.verifiers import grade_by_domain


def evaluate(
    model,
    tokenizer,
    problems: Sequence[Problem],
    verifiers: dict,
    *,
    n_samples: int,
    pass_k: Sequence[int],
    temperature: float,
    top_p: float,
    top_k: int,
    max_new_tokens: int,
    prompt_format: PromptFormat | None = None,
    seed: int = 0,
    progress: bool = False,
    stop_token_ids: Sequence[int] = (),
    engine: RolloutEngine | None = None,
    processor=None,
) -> tuple[dict, list[dict]]:
    """Sample `n_samples` responses per problem, asked as `prompt_format` says (default: the
    question alone in the chat template), and grade them, through `engine` (a run's rollout
    engine; default: the `hf` engine on `model`). Stop tokens: the tokenizer's EOS, the model's
    generation config eos_token_id(s) and `stop_token_ids`.

    Returns ({domain: {"acc": avg@N, "avg@N": .., "pass@k": .., "n_prompts": ..}}, samples).
    Ungraded responses (None) count as wrong in the accuracy, and are counted separately.
    """
    sampling = resolve_sampling(
        tokenizer,
        model,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        stop_token_ids=stop_token_ids,
        banned_token_ids=image_token_ids(processor) if processor is not None else (),
    )
    engine = engine or make_engine("hf", model, tokenizer)
    n = n_samples if temperature > 0 else 1  # greedy decoding gives one answer per prompt
    prompt_ids, vision = encode_inputs(
        tokenizer, processor, problems, prompt_format or PromptFormat()
    )
    responses = _generate(engine, sampling, prompt_ids, vision, n, seed, progress)
    texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
    rows = [p for p in problems for _ in range(n)]
    scores = grade_by_domain(verifiers, rows, texts)
    summary = _domain_summary(rows, scores, responses, n, pass_k)
    samples = [
        {
            "prompt_id": p.id,
            "domain": p.domain,
            "sample": i % n,
            "completion": texts[i],
            "reward": scores[i],
            "length": len(responses[i]),
            "level": p.meta.get("level"),
        }
        for i, p in enumerate(rows)
    ]
    return summary, samples


def _generate(engine, sampling, prompt_ids, vision, n: int, seed: int, progress: bool) -> list:
    """`n` responses to each prompt, in order, 256 rows per generate call."""
    # a fixed seed per evaluation: the same checkpoint always gets the same score
    cpu_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    responses = []
    chunk = 256
    repeated = [ids for ids in prompt_ids for _ in range(n)]
    seen = None if vision is None else [v for v in vision for _ in range(n)]
    for start in tqdm(
        range(0, len(repeated), chunk), desc="eval", leave=False, disable=not progress
    ):
        piece = repeated[start : start + chunk]
        if seen is None:
            responses += engine.generate(piece, sampling).responses
        else:
            responses += engine.generate(piece, sampling, seen[start : start + chunk]).responses
    torch.random.set_rng_state(cpu_state)
    return responses


def _domain_summary(
    rows: list[Problem], scores: list, responses: list, n: int, pass_k: Sequence[int]
) -> dict:
    """{domain: {"acc", "avg@N", "n_prompts", "ungraded", "mean_length", "pass@k"...}} over the
    graded `rows` (each problem `n` times in a row)."""
    by_domain = defaultdict(list)
    for i, p in enumerate(rows):
        by_domain[p.domain].append(i)
    summary: dict = {}
    for domain, idx in by_domain.items():
        correct = np.array([(scores[i] or 0.0) for i in idx]).reshape(-1, n)
        entry = {
            "acc": float(correct.mean()),
            f"avg@{n}": float(correct.mean()),
            "n_prompts": int(correct.shape[0]),
            "ungraded": int(sum(scores[i] is None for i in idx)),
            "mean_length": float(np.mean([len(responses[i]) for i in idx])),
        }
        for k in pass_k:
            if k <= n:
                entry[f"pass@{k}"] = float(
                    estimate_pass_at_k(n, correct.sum(1).astype(int), k).mean()
                )
        summary[domain] = entry
    return summary


def evaluate_as_configured(
    model, tokenizer, problems, verifiers, cfg, engine: RolloutEngine | None = None, processor=None
) -> tuple[dict, list[dict]]:
    """`evaluate` with the sampling settings of an experiment's `eval` section (stop tokens: the
    rollout's), through `engine` when given."""
    return evaluate(
        model,
        tokenizer,
        problems,
        verifiers,
        n_samples=cfg.eval.n_samples,
        pass_k=cfg.eval.pass_k,
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        top_k=cfg.eval.top_k,
        max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
        prompt_format=PromptFormat.of(cfg.data),
        seed=cfg.seed,
        progress=cfg.output.progress,
        stop_token_ids=cfg.rollout.stop_token_ids,
        engine=engine,
        processor=processor,
    )
