"""The teacher phase of a step: what the active objectives need from teachers and the reference
model, and nothing else (no teacher pass for GRPO, no top-K for OPD).

A privileged teacher (OPSD) scores the student's very tokens behind a prompt that also holds the
row's reference solution; the student never sees that prompt. A teacher whose chat template
differs from the student's (bridged at start, uniopd.engine.prompts) scores them behind the same
messages rendered in its own template (METHOD 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from uniopd.engine.batching import micro_batches
from uniopd.engine.length_buckets import LengthBuckets
from uniopd.engine.prompts import encode_problems
from uniopd.engine.sequences import SequenceBatch, with_prompts
from uniopd.engine.vision import encode_inputs
from uniopd.objectives import Need
from uniopd.setup.parts import Parts
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
    # teacher ref -> the batch behind that teacher's own prompts (privileged, or rendered in its
    # own chat template); a teacher not listed reads the student's batch
    own_prompts: dict[str, SequenceBatch] = field(default_factory=dict)
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
        tok = parts.tokenizer
        self.special_ids = tuple(tok.all_special_ids) if tok is not None else ()
        # (teacher ref, problem id) -> the teacher's own prompt ids and pixel inputs: a problem
        # recurs across steps, and its prompt is the same each time
        self._own: dict[tuple[str, str], tuple[list[int], dict | None]] = {}

    def own_prompts(
        self, batch: SequenceBatch, rows: Sequence[Problem]
    ) -> dict[str, SequenceBatch]:
        """The student's response tokens behind each teacher's own prompts, for the teachers
        that have them: a privileged teacher's (the reference solution in context), a teacher
        whose chat template differs from the student's (the same messages in its template), and
        a text teacher of an image-text student (each row as text: its teacher template, e.g.
        the picture's text rendering, METHOD 5 cross-modal)."""
        pool, parts = self.parts.teachers, self.parts
        if pool is None:
            return {}
        out = {}
        for ref in pool.models_by_ref:
            privileged = ref in pool.privileged_refs
            reads_text = ref in parts.text_readers
            tok = parts.teacher_tokenizers.get(ref)
            if not (privileged or reads_text or tok is not None):
                continue
            tok = tok or parts.tokenizer
            # encode each problem once, not once per rollout of its group or per step
            new = [p for p in {p.id: p for p in rows}.values() if (ref, p.id) not in self._own]
            if new:
                questions = [privileged_prompt(p) for p in new] if privileged else None
                fmt = parts.prompt_format
                vision: list[dict | None]
                if reads_text:
                    ids = encode_problems(tok, new, fmt.for_text_reader(), questions)
                    vision = [None] * len(new)
                else:  # an image-text teacher keeps the row's images
                    ids, seen = encode_inputs(tok, parts.processor, new, fmt, questions)
                    vision = list(seen) if seen is not None else [None] * len(new)
                self._own.update(((ref, p.id), (i, v)) for p, i, v in zip(new, ids, vision))
            prompts = [self._own[ref, p.id] for p in rows]
            out[ref] = with_prompts(
                batch,
                [ids for ids, _ in prompts],
                parts.tokenizer.pad_token_id,
                [v for _, v in prompts] if any(v is not None for _, v in prompts) else None,
            )
        return out

    @torch.no_grad()
    def score(self, batch: SequenceBatch, rows: Sequence[Problem]) -> TeacherSignals:
        """What the objectives need from teachers and the reference, for the whole batch (full
        teacher logits excepted: `teacher_logits` gives those one micro-batch at a time)."""
        pool, mb = self.parts.teachers, self.cfg.train.micro_batch_size
        budget = self.cfg.train.max_tokens_per_micro_batch
        chunk = self.cfg.train.logprob_chunk_tokens
        domains = [p.domain for p in rows]
        own = self.own_prompts(batch, rows)
        out = TeacherSignals(domains, own, self.special_ids)
        if Need.TEACHER_LOGP in self.needs:
            assert pool is not None
            out.teacher_logp_N_T = pool.logprobs(batch, domains, mb, own, chunk, budget)
        if Need.TEACHER_TOPK in self.needs:
            assert pool is not None
            out.teacher_topk_logp_N_T_K, out.teacher_topk_ids_N_T_K = pool.topk(
                batch, domains, self.topk, mb, own, chunk, budget
            )
        if Need.REFERENCE_LOGP in self.needs:
            ref = torch.zeros(batch.response_mask_N_T.shape, device=batch.input_ids_N_L.device)
            for c in micro_batches(batch, mb, budget):
                piece = batch.rows(c).trimmed()
                got = LengthBuckets.of(piece).logprobs(self.parts.reference, chunk_tokens=chunk)
                ref[c, : got.shape[1]] = got
            out.reference_logp_N_T = ref
        return out

    def teacher_logits(self, batch: SequenceBatch, scored: TeacherSignals):
        """rows -> full teacher logits [n, T, V] of those rows (one micro-batch)."""
        domains, own, pool = scored.domains, scored.own_prompts, self.parts.teachers

        def logits(rows: torch.Tensor) -> torch.Tensor:
            assert pool is not None
            sub_own = {ref: b.rows(rows) for ref, b in own.items()}
            return pool.logits(batch.rows(rows), [domains[i] for i in rows.tolist()], sub_own)

        return logits
