"""The teacher phase of a step: what the active objectives need from teachers and the reference
model, and nothing else (no teacher pass for GRPO, no top-K for OPD).

A privileged teacher (OPSD) scores the student's very tokens behind a prompt that also holds the
row's reference solution; the student never sees that prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from uniopd.engine.batching import micro_batches
from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.sequences import SequenceBatch, encode_prompts, with_prompts
from uniopd.objectives import Need
from uniopd.parts import Parts
from uniopd.tasks.problem import Problem


def privileged_prompt(problem: Problem) -> str:
    """The question with its reference solution, for a teacher that may see it."""
    return (
        f"{problem.prompt}\n\nA reference solution:\n{problem.solution}\n\n"
        "Answer the question above in your own words."
    )


@dataclass
class TeacherSignals:
    """The teacher phase's output for the whole batch; a signal no objective asked for is None."""

    domains: list[str]
    privileged: SequenceBatch | None = None  # the batch behind the privileged prompts
    special_token_ids: tuple[int, ...] = ()
    teacher_logp_N_T: torch.Tensor | None = None
    teacher_topk_logp_N_T_K: torch.Tensor | None = None
    teacher_topk_ids_N_T_K: torch.Tensor | None = None
    reference_logp_N_T: torch.Tensor | None = None


class Scorer:
    def __init__(self, parts: Parts, needs: frozenset[Need], cfg):
        self.parts, self.needs, self.cfg = parts, needs, cfg
        self.topk = max(
            (
                getattr(o.options, "k", 0)
                for _, _, o in cfg.method.objectives()
                if Need.TEACHER_TOPK in o.needs()
            ),
            default=0,
        )
        pool = parts.teachers
        self.privileged = bool(pool and pool.privileged_refs)
        tok = parts.tokenizer
        self.special_ids = tuple(tok.all_special_ids) if tok is not None else ()

    def privileged_batch(
        self, batch: SequenceBatch, rows: Sequence[Problem]
    ) -> SequenceBatch | None:
        if not self.privileged:
            return None
        ids = encode_prompts(
            self.parts.tokenizer, [privileged_prompt(p) for p in rows], self.cfg.data.template
        )
        return with_prompts(batch, ids, self.parts.tokenizer.pad_token_id)

    @torch.no_grad()
    def score(self, batch: SequenceBatch, rows: Sequence[Problem]) -> TeacherSignals:
        """What the objectives need from teachers and the reference, for the whole batch (full
        teacher logits excepted: `teacher_logits` gives those one micro-batch at a time)."""
        pool, mb = self.parts.teachers, self.cfg.train.micro_batch_size
        budget = self.cfg.train.max_tokens_per_micro_batch
        chunk = self.cfg.train.logprob_chunk_tokens
        domains = [p.domain for p in rows]
        privileged = self.privileged_batch(batch, rows)
        out = TeacherSignals(domains, privileged, self.special_ids)
        if Need.TEACHER_LOGP in self.needs:
            assert pool is not None
            out.teacher_logp_N_T = pool.logprobs(batch, domains, mb, privileged, chunk, budget)
        if Need.TEACHER_TOPK in self.needs:
            assert pool is not None
            out.teacher_topk_logp_N_T_K, out.teacher_topk_ids_N_T_K = pool.topk(
                batch, domains, self.topk, mb, privileged, chunk, budget
            )
        if Need.REFERENCE_LOGP in self.needs:
            ref = torch.zeros(batch.response_mask_N_T.shape, device=batch.input_ids_N_L.device)
            for c in micro_batches(batch, mb, budget):
                piece = batch.rows(c).trimmed()
                got = response_logprobs(self.parts.reference, piece, chunk_tokens=chunk)
                ref[c, : got.shape[1]] = got
            out.reference_logp_N_T = ref
        return out

    def teacher_logits(self, batch: SequenceBatch, scored: TeacherSignals):
        """rows -> full teacher logits [n, T, V] of those rows (one micro-batch)."""
        domains, privileged, pool = scored.domains, scored.privileged, self.parts.teachers

        def logits(rows: torch.Tensor) -> torch.Tensor:
            assert pool is not None
            sub_priv = None if privileged is None else privileged.rows(rows)
            return pool.logits(batch.rows(rows), [domains[i] for i in rows.tolist()], sub_priv)

        return logits
