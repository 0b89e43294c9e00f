"""Held-out evaluation: accuracy per domain as avg@N, pass@k, and per-sample records.

The rows (each problem n times, in order) are cut into chunks of CHUNK_ROWS, and chunk k is
sampled from a seed of its own (`chunk_seed`). With several processes (`dist`), each samples and
grades every world-th chunk and the graded rows are gathered on all of them: a chunk comes out the
same whichever process draws it, so N processes score what one does (bit for bit with the `hf`
engine on CPUs, tests/test_every_rank.py; on GPUs as far as their kernels are deterministic). A
process keeps only its own chunks' token ids, and none waits in a collective while another
samples everything.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from evalplus.eval import estimate_pass_at_k
from tqdm.auto import tqdm

from uniopd.engine.distributed import Dist
from uniopd.engine.fsdp import is_sharded
from uniopd.engine.prompts import PromptFormat
from uniopd.engine.rollout import RolloutEngine, make_engine
from uniopd.engine.sampling import SamplingSettings, resolve_sampling
from uniopd.engine.vision import encode_inputs, image_token_ids
from uniopd.tasks.problem import Problem
from uniopd.verifiers import grade_by_domain

CHUNK_ROWS = 256  # rows per generate call, and the unit the processes share out

# one sampled row as the processes exchange it: (row, reward, length in tokens, completion)
GradedRow = tuple[int, float | None, int, str | None]


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
    dist: Dist | None = None,
    keep_completions: bool = True,
) -> tuple[dict, list[dict]]:
    """Sample `n_samples` responses per problem, asked as `prompt_format` says (default: the
    question alone in the chat template), and grade them, through `engine` (a run's rollout
    engine; default: the `hf` engine on `model`). Stop tokens: the tokenizer's EOS, the model's
    generation config eos_token_id(s) and `stop_token_ids`. `dist`: the processes that share the
    rows out (every one of them must call this); each gets the whole result.
    `keep_completions=False` leaves the texts out of the samples (None): a difficulty estimate
    needs only the rewards, and a million long responses would not fit in memory.

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
    grader = _ChunkGrader(
        engine or make_engine("hf", model, tokenizer),
        sampling,
        tokenizer,
        processor,
        prompt_format or PromptFormat(),
        verifiers,
    )
    n = n_samples if temperature > 0 else 1  # greedy decoding gives one answer per prompt
    share = _sharing(dist, model)
    graded = _graded_rows(grader, problems, n, seed, share, progress, keep_completions)
    rows = [problems[g[0] // n] for g in graded]
    summary = _domain_summary(rows, [g[1] for g in graded], [g[2] for g in graded], n, pass_k)
    if keep_completions:  # a domain's own figures, e.g. the describe task's CHAIR
        _verifier_metrics(summary, verifiers, rows, [g[3] for g in graded])
    samples = [
        {
            "prompt_id": p.id,
            "domain": p.domain,
            "sample": row % n,
            "completion": completion,
            "reward": reward,
            "length": length,
            "level": p.meta.get("level"),
        }
        for p, (row, reward, length, completion) in zip(rows, graded, strict=True)
    ]
    return summary, samples


def _graded_rows(
    grader: _ChunkGrader,
    problems: Sequence[Problem],
    n: int,
    seed: int,
    share: Dist | None,
    progress: bool,
    keep_completions: bool,
) -> list[GradedRow]:
    """Every row (problem r // n), sampled and graded: this process's chunks (every world-th,
    so that a mixed-domain list deals each process a like mix), then everyone's, in row order."""
    chunks = range(math.ceil(len(problems) * n / CHUNK_ROWS))
    mine = chunks if share is None else chunks[share.rank :: share.world]
    shown = progress and (share is None or share.is_main)
    graded: list[GradedRow] = []
    with _rng_kept():
        for k in tqdm(mine, desc="eval", leave=False, disable=not shown):
            graded += grader.chunk(problems, n, k, seed, keep_completions)
    if share is None:
        return graded
    return sorted(share.gather_objects(graded), key=lambda g: g[0])


def chunk_seed(seed: int, k: int) -> int:
    """Chunk k's seed: `seed` (below 2**32, as the schema checks) in the low 32 bits and k above
    them, so no two (seed, chunk) pairs share one: the same checkpoint always gets the same score,
    however many processes share the rows. Chunk 0 samples from `seed` itself, so an evaluation
    of up to CHUNK_ROWS rows samples as it did before each chunk had a seed of its own."""
    return seed + (k << 32)


def _sharing(dist: Dist | None, model) -> Dist | None:
    """The processes that split the rows, if any. A sharded student's every forward is a
    collective, so each process then samples every row, in lock-step with the others."""
    if dist is None or not dist.active or is_sharded(model):
        return None
    return dist


def _rng_kept():
    """torch's global random state (the CPU's and the current GPU's) put back afterwards: the
    training steps after an evaluation sample as they would without it."""
    gpu = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    return torch.random.fork_rng(devices=gpu)


class _ChunkGrader:
    """Samples and grades one chunk of an evaluation's rows."""

    def __init__(self, engine, sampling: SamplingSettings, tokenizer, processor, fmt, verifiers):
        self.engine, self.sampling, self.fmt = engine, sampling, fmt
        self.tokenizer, self.processor, self.verifiers = tokenizer, processor, verifiers

    def chunk(
        self, problems: Sequence[Problem], n: int, k: int, seed: int, keep_completions: bool
    ) -> list[GradedRow]:
        """Rows k * CHUNK_ROWS onwards (row r: problem r // n), sampled from `chunk_seed`."""
        rows = range(k * CHUNK_ROWS, min((k + 1) * CHUNK_ROWS, len(problems) * n))
        first = rows[0] // n
        asked = problems[first : rows[-1] // n + 1]  # encoded here: only this process's share
        ids, vision = encode_inputs(self.tokenizer, self.processor, asked, self.fmt)
        which = [r // n - first for r in rows]
        torch.manual_seed(chunk_seed(seed, k))
        prompt_ids = [ids[j] for j in which]
        if vision is None:
            responses = self.engine.generate(prompt_ids, self.sampling).responses
        else:
            seen = [vision[j] for j in which]
            responses = self.engine.generate(prompt_ids, self.sampling, seen).responses
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=True)
        scores = grade_by_domain(self.verifiers, [asked[j] for j in which], texts)
        return [
            (r, score, len(response), text if keep_completions else None)
            for r, score, response, text in zip(rows, scores, responses, texts, strict=True)
        ]


def _domain_summary(
    rows: list[Problem], scores: list, lengths: list[int], n: int, pass_k: Sequence[int]
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
            "mean_length": float(np.mean([lengths[i] for i in idx])),
        }
        for k in pass_k:
            if k <= n:
                entry[f"pass@{k}"] = float(
                    estimate_pass_at_k(n, correct.sum(1).astype(int), k).mean()
                )
        summary[domain] = entry
    return summary


def _verifier_metrics(summary: dict, verifiers: dict, rows: list[Problem], texts: list) -> None:
    """Add what a verifier with `eval_metrics(problems, completions) -> {name: value}` reports
    on its domain's rows to that domain's entry."""
    for domain, entry in summary.items():
        metrics = getattr(verifiers.get(domain), "eval_metrics", None)
        if metrics is not None:
            idx = [i for i, p in enumerate(rows) if p.domain == domain]
            entry.update(metrics([rows[i] for i in idx], [texts[i] for i in idx]))


def evaluate_as_configured(
    model,
    tokenizer,
    problems,
    verifiers,
    cfg,
    engine: RolloutEngine | None = None,
    processor=None,
    dist: Dist | None = None,
) -> tuple[dict, list[dict]]:
    """`evaluate` with the sampling settings of an experiment's `eval` section (stop tokens: the
    rollout's), through `engine` when given, shared out over `dist`'s processes."""
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
        dist=dist,
    )
