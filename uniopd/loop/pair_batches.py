"""Training offline from a pair file (`data.pairs`, docs/method.md 9.4): the step's pairs become
the same rows a rollout step gives the update, so nothing downstream knows the difference.

Each pair is a training Problem (uniopd.data.pair_files.pair_problems) whose prompt the student
sees exactly as it would sample behind it (chat template, system prompt, domain template: the
rollout phase's own encoding); its chosen and rejected responses follow as response tokens, each
ending with the student's end-of-turn token as a sampled response does. The pair is a group of
two rows, chosen (reward 1) then rejected (reward 0), so the update's pair builder
(uniopd.loop.pairs) makes exactly the file's pair of it; the file's scores ride along for
`score: file`. The frozen reference scores the rows once per step in the teacher phase, as for
rollout pairs.
"""

from __future__ import annotations

import logging

import torch

from uniopd.engine.sequences import pack
from uniopd.loop.optim import PhaseTimer
from uniopd.loop.records import RolloutBatch
from uniopd.loop.rollout_phase import RolloutPhase
from uniopd.tasks.problem import Problem

log = logging.getLogger(__name__)


class PairBatches:
    """Stands in for the rollout phase: called with the step's problems (pairs), gives its rows."""

    def __init__(self, cfg, rollouts: RolloutPhase):
        self.parts, self.dist = rollouts.parts, rollouts.dist
        self.prompt_ids = rollouts.prompt_ids  # the student's view of each prompt, encoded once
        # a sampled response stops on the tokenizer's EOS first (uniopd.engine.sampling)
        self.end_id = rollouts.sampling.stop_token_ids[0]
        self.max_tokens = cfg.rollout.max_new_tokens
        self._responses: dict[str, tuple[list[int], list[int]]] = {}  # a pair recurs per epoch
        self._cut = 0

    def __call__(self, problems: list[Problem], step: int, timer: PhaseTimer) -> RolloutBatch:
        """This process's pairs as rows `[chosen_0, rejected_0, chosen_1, ...]` (step: unused,
        the rows do not depend on it; the signature is the rollout phase's)."""
        tok = self.parts.tokenizer
        with timer("rollout"):  # (what the step's responses cost: here, tokenizing them)
            responses = [self._tokens(p) for p in problems]
            rows = [p for p in problems for _ in range(2)]
            batch = pack(
                [self.prompt_ids[p.id] for p in rows],
                [ids for pair in responses for ids in pair],
                tok.pad_token_id,
            ).to(self.parts.device)
        texts = [p.meta[side] for p in problems for side in ("chosen", "rejected")]
        scores = [
            float("nan") if p.meta[side] is None else p.meta[side]
            for p in problems
            for side in ("score_chosen", "score_rejected")
        ]
        first = self.dist.rank * len(problems)  # group ids are global, as the rollout phase's
        return RolloutBatch(
            problems,
            rows,
            batch,
            texts,
            torch.tensor([1.0, 0.0] * len(problems)),
            torch.arange(first, first + len(problems)).repeat_interleave(2),
            torch.ones(len(rows), dtype=torch.bool),
            file_score_N=torch.tensor(scores, device=self.parts.device),
        )

    def _tokens(self, p: Problem) -> tuple[list[int], list[int]]:
        if p.id not in self._responses:
            chosen, rejected = (self._encode(p.meta[s], p) for s in ("chosen", "rejected"))
            self._responses[p.id] = (chosen, rejected)
        return self._responses[p.id]

    def _encode(self, text: str, p: Problem) -> list[int]:
        ids = self.parts.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids or ids[-1] != self.end_id:
            ids = [*ids, self.end_id]
        if len(ids) > self.max_tokens:  # as a rollout is cut at rollout.max_new_tokens
            self._cut += 1
            log.warning(
                "pair %s (row %s): a response of %d tokens is cut to rollout.max_new_tokens = %d "
                "(%d cut so far)",
                p.id,
                p.meta.get("pair_row"),
                len(ids),
                self.max_tokens,
                self._cut,
            )
            ids = ids[: self.max_tokens]
        return ids
