"""SENTINEL's context-coherent pairs (arXiv 2507.12455; docs/method.md 9.3), built each step from
the student's own descriptions of the step's pictures: `cdpo` with `pairs: sentinel`.

For each picture, iterative context bootstrapping: the context c starts empty; each iteration
samples G continuations of (prompt, c) from the current student, cuts each at the end of its
first sentence, and classifies that sentence by the two detectors' agreement rule
(uniopd/verifiers/detectors.py; an uncertain one is left out). The first faithful and the first
hallucinated sentence, in sampling order, make a pair that shares the prompt and c exactly and
differs in the sentence where the hallucination starts; the faithful sentence then joins c, and
the next iteration continues from it. A picture whose continuations hold no faithful sentence
stops growing. `iterations` caps the context at that many sentences.

Each pair is a group of two rows, chosen (reward 1) then rejected (reward 0), whose responses are
c + sentence with `pair_weight_N_T` 1 on the sentence's tokens (the row layout `cdpo` reads), so
the update's pair builder (uniopd.loop.pairs) makes exactly these pairs, and the frozen reference
scores the rows in the teacher phase as for rollout pairs. Like uniopd.loop.pair_batches, this
stands in for the rollout phase: nothing downstream knows the difference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from uniopd.engine.sequences import SequenceBatch, pack
from uniopd.loop.optim import PhaseTimer
from uniopd.loop.records import RolloutBatch
from uniopd.loop.rollout_phase import RolloutPhase
from uniopd.seeds import RANK_OFFSET, step_seed
from uniopd.tasks.problem import Problem
from uniopd.verifiers.describe import classify
from uniopd.verifiers.detectors import detector_verdicts

# a continuation is sampled only as far as its first sentence can reach (a sentence of the
# describe task is 7 to 9 tokens); one cut here is still classified by what it mentions
SENTENCE_TOKENS = 24
_ENDS = (".", "!", "?")


@dataclass
class SentencePair:
    """One pair of a picture: the shared context's tokens, then the two next sentences'."""

    problem: Problem
    context: list[int]
    chosen: list[int]  # a faithful sentence
    rejected: list[int]  # the sentence where a hallucination starts


def first_sentence(ids: list[int], decode: Callable[[list[int]], str], stops) -> list[int]:
    """The tokens of the first sentence of a continuation: through the token that closes it, the
    whole continuation (before its stop token) when none does."""
    ids = list(ids)
    for j, t in enumerate(ids):
        if t in stops:
            ids = ids[:j]
            break
    for j in range(1, len(ids) + 1):
        if decode(ids[:j]).rstrip().endswith(_ENDS):
            return ids[:j]
    return ids


def next_pair(
    continuations: list[list[int]], decode: Callable[[list[int]], str], stops, verdicts: dict
) -> tuple[list[int] | None, list[int] | None]:
    """(first faithful sentence, first hallucinated sentence) among the continuations' first
    sentences, in sampling order; None where there is none. Empty continuations (the student
    ended its description) and uncertain sentences take no part."""
    faithful = hallucinated = None
    for ids in continuations:
        s = first_sentence(ids, decode, stops)
        text = decode(s).strip()
        if not text:
            continue
        kind = classify(text, verdicts)
        if kind == "faithful" and faithful is None:
            faithful = s
        elif kind == "hallucinated" and hallucinated is None:
            hallucinated = s
    return faithful, hallucinated


def pair_rows(
    pairs: list[SentencePair], prompt_ids: dict, vision: dict | None, pad_id: int
) -> tuple[SequenceBatch, torch.Tensor]:
    """The pairs as rows [chosen_0, rejected_0, chosen_1, ...]: prompt | context + sentence, and
    `[N, T]` 1 on each row's sentence tokens."""
    rows = [(p, side) for p in pairs for side in (p.chosen, p.rejected)]
    responses = [p.context + side for p, side in rows]
    batch = pack(
        [prompt_ids[p.problem.id] for p, _ in rows],
        responses,
        pad_id,
        None if vision is None else [vision[p.problem.id] for p, _ in rows],
    )
    weight = torch.zeros_like(batch.response_mask_N_T)
    for i, (p, side) in enumerate(rows):
        weight[i, len(p.context) : len(p.context) + len(side)] = 1.0
    return batch, weight


def sentinel_iterations(cfg) -> int:
    """The context's iterations of the run's SENTINEL pairs (a `cdpo` term with `pairs:
    sentinel`); 0 when the run has none."""
    for _, _, o in cfg.method.objectives():
        if getattr(o.options, "pairs", None) == "sentinel":
            return int(o.options.iterations)
    return 0


class SentinelPairs:
    """Stands in for the rollout phase: called with the step's pictures, gives their pairs' rows."""

    def __init__(self, iterations: int, rollouts: RolloutPhase):
        self.iterations, self.rollouts = iterations, rollouts
        self.parts, self.dist = rollouts.parts, rollouts.dist
        self.group_size = rollouts.cfg.rollout.group_size
        self.seed = rollouts.cfg.seed
        self.sampling = dataclasses.replace(
            rollouts.sampling,
            max_new_tokens=min(SENTENCE_TOKENS, rollouts.sampling.max_new_tokens),
        )

    def __call__(self, problems: list[Problem], step: int, timer: PhaseTimer) -> RolloutBatch:
        tok = self.parts.tokenizer
        with timer("rollout"), self.parts.precision.autocast():
            torch.manual_seed(step_seed(self.seed, step, self.dist.rank * RANK_OFFSET))
            self.rollouts.engine.wake()
            pairs = self.bootstrap(problems)
        if not pairs:  # nothing to prefer this step: one ungraded row per picture, no pair
            return self._no_pairs(problems)
        batch, weight = pair_rows(
            pairs, self.rollouts.prompt_ids, self.rollouts.vision, tok.pad_token_id
        )
        rows = [p.problem for p in pairs for _ in range(2)]
        texts = tok.batch_decode(
            batch.response_ids_N_T * batch.response_mask_N_T.long(), skip_special_tokens=True
        )
        # group ids are global: process r's are r * B * iterations onwards
        first = self.dist.rank * len(problems) * self.iterations
        return RolloutBatch(
            problems,
            rows,
            batch.to(self.parts.device),
            texts,
            torch.tensor([1.0, 0.0] * len(pairs)),
            torch.arange(first, first + len(pairs)).repeat_interleave(2),
            torch.ones(len(rows), dtype=torch.bool),
            pair_weight_N_T=weight.to(self.parts.device),
        )

    def bootstrap(self, problems: list[Problem]) -> list[SentencePair]:
        """Every picture's pairs, its context grown one faithful sentence per iteration."""
        tok, G = self.parts.tokenizer, self.group_size
        stops = set(self.sampling.stop_token_ids)
        verdicts = {p.id: detector_verdicts(p.meta["scene"], p.meta["objects"]) for p in problems}
        contexts: dict[str, list[int]] = {p.id: [] for p in problems}
        active, pairs = list(problems), []
        for _ in range(self.iterations):
            if not active:
                break
            prompts = [self.rollouts.prompt_ids[p.id] + contexts[p.id] for p in active]
            outs = self._sample(active, prompts)
            grown = []
            for i, p in enumerate(active):
                faithful, hallucinated = next_pair(
                    outs[i * G : (i + 1) * G], tok.decode, stops, verdicts[p.id]
                )
                if faithful is not None and hallucinated is not None:
                    pairs.append(SentencePair(p, contexts[p.id], faithful, hallucinated))
                if faithful is not None:
                    contexts[p.id] = contexts[p.id] + faithful
                    grown.append(p)
            active = grown
        return pairs

    def _sample(self, problems: list[Problem], prompts: list[list[int]]) -> list[list[int]]:
        """G continuations of each prompt, prompt-major."""
        G = self.group_size
        repeated = [ids for ids in prompts for _ in range(G)]
        engine, vision = self.rollouts.engine, self.rollouts.vision
        if vision is None:
            return engine.generate(repeated, self.sampling).responses
        seen = [vision[p.id] for p in problems for _ in range(G)]
        return engine.generate(repeated, self.sampling, seen).responses

    def _no_pairs(self, problems: list[Problem]) -> RolloutBatch:
        """A step without pairs still gives the update rows (one per picture: its prompt and an
        end-of-turn token, ungraded), so that it takes no gradient and logs `pairs/.../count` 0."""
        end = self.sampling.stop_token_ids[0]
        batch = pack(
            [self.rollouts.prompt_ids[p.id] for p in problems],
            [[end] for _ in problems],
            self.parts.tokenizer.pad_token_id,
            None
            if self.rollouts.vision is None
            else [self.rollouts.vision[p.id] for p in problems],
        )
        first = self.dist.rank * len(problems) * self.iterations
        return RolloutBatch(
            problems,
            list(problems),
            batch.to(self.parts.device),
            [""] * len(problems),
            torch.full((len(problems),), float("nan")),
            torch.arange(first, first + len(problems)),
            torch.ones(len(problems), dtype=torch.bool),
            pair_weight_N_T=torch.zeros_like(batch.response_mask_N_T).to(self.parts.device),
        )
