"""Teachers as routed services: each rollout is scored by its domain's expert (METHOD 5).

One model is loaded once however many domains name it. Scoring is a prefill over the student's
own tokens, in any of three forms an objective may ask for: the sampled token's log-prob, the
top-K log-probs and ids, or the full logits (one micro-batch at a time). A teacher may see its own
prompts in front of the student's response tokens (`own_prompts`, built by the caller): the prompt
rendered in the teacher's own chat template, or, for a privileged teacher, a prompt that also holds
the reference solution. If a teacher call
fails, its rows come back NaN, which the objectives turn into loss mask 0 instead of stopping
the run. Rows go in micro-batches of rows or of a token budget, each trimmed to its own width, and
log-probs are computed in chunks of tokens (uniopd.engine.logprobs); a teacher may sit on another
device than the student.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from uniopd.engine.batching import micro_batches
from uniopd.engine.length_buckets import LengthBuckets
from uniopd.engine.logprobs import CHUNK_TOKENS, response_logits
from uniopd.engine.sequences import SequenceBatch
from uniopd.engine.teacher_client import ServedTeacher

log = logging.getLogger(__name__)


class UnknownDomainError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class TeacherPool:
    def __init__(
        self,
        models_by_ref: dict,
        refs_by_domain: dict[str, str],
        privileged_refs: Sequence[str] = (),
    ):
        """`models_by_ref`: one model per teacher ref; `refs_by_domain`: the routing;
        `privileged_refs`: the refs that score behind the privileged prompt."""
        self.models_by_ref = models_by_ref
        self.refs_by_domain = refs_by_domain
        self.privileged_refs = set(privileged_refs)

    def ref_for(self, domain: str) -> str:
        if domain not in self.refs_by_domain:
            raise UnknownDomainError(
                f"no teacher for domain {domain!r}; teachers are named for "
                f"{sorted(self.refs_by_domain)} (add teachers.{domain} to the experiment file)"
            )
        return self.refs_by_domain[domain]

    def _score(
        self,
        batch: SequenceBatch,
        domains: Sequence[str],
        micro_batch: int,
        own_prompts: dict[str, SequenceBatch] | None,
        fn: Callable,
        out: torch.Tensor,
        max_tokens: int = 0,
        trim: bool = True,
    ) -> torch.Tensor:
        """Fill `out` row by row with fn(model, rows of the batch that teacher sees), in
        micro-batches of rows or of a token budget; `trim` drops each micro-batch's padding
        columns (its result fills the first columns of `out`)."""
        by_ref: dict[str, list[int]] = {}
        for i, d in enumerate(domains):
            by_ref.setdefault(self.ref_for(d), []).append(i)
        for ref, rows in by_ref.items():
            model = self.models_by_ref[ref]
            # a teacher may sit on another device than the student: its rows go there and back;
            # a served teacher (log-probs only, checked by the schema) takes its rows in one call
            # and splits them into concurrent requests itself
            served = isinstance(model, ServedTeacher)
            where = out.device if served else next(model.parameters()).device
            seen = (own_prompts or {}).get(ref, batch)
            if ref in self.privileged_refs and seen is batch:
                raise ValueError(
                    f"teacher {ref} is privileged, but no privileged prompts were built"
                )
            mine = torch.tensor(rows, device=out.device)
            routed = seen.rows(mine)
            whole = [torch.arange(len(rows), device=out.device)]
            for c in whole if served else micro_batches(routed, micro_batch, max_tokens):
                index = mine[c]
                piece = routed.rows(c).trimmed() if trim else routed.rows(c)
                try:
                    got = model.logprobs(piece) if served else fn(model, piece.to(where))
                    got = got.to(out)
                    out[index, : got.shape[1]] = got
                except Exception:  # noqa: BLE001 - a failed call masks its rows, the run goes on
                    out[index] = float("nan")
                    log.exception(
                        "teacher %s failed on %d rollouts; their tokens are masked", ref, len(index)
                    )
        return out

    @torch.no_grad()
    def logprobs(
        self,
        batch: SequenceBatch,
        domains: Sequence[str],
        micro_batch: int = 0,
        own_prompts: dict[str, SequenceBatch] | None = None,
        chunk_tokens: int = CHUNK_TOKENS,
        max_tokens: int = 0,
    ) -> torch.Tensor:
        """Teacher log-prob of every sampled response token, `[N, T]` (0 on padding)."""
        out = torch.zeros(batch.response_mask_N_T.shape, device=batch.input_ids_N_L.device)
        return self._score(
            batch,
            domains,
            micro_batch,
            own_prompts,
            # in length buckets: a prefill of mixed lengths, most of its cells padding otherwise
            lambda m, b: LengthBuckets.of(b).logprobs(m, chunk_tokens=chunk_tokens),
            out,
            max_tokens,
        )

    @torch.no_grad()
    def topk(
        self,
        batch: SequenceBatch,
        domains: Sequence[str],
        k: int,
        micro_batch: int = 0,
        own_prompts: dict[str, SequenceBatch] | None = None,
        chunk_tokens: int = CHUNK_TOKENS,
        max_tokens: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's K most likely tokens at every response position: (log-probs over the
        full vocabulary `[N, T, K]`, token ids `[N, T, K]`)."""
        n, t = batch.response_mask_N_T.shape
        device = batch.input_ids_N_L.device
        packed = torch.zeros((n, t, 2 * k), device=device)

        def top(model, b):  # in length buckets, as the log-probs are
            logp, ids = LengthBuckets.of(b).topk(model, k, chunk_tokens)
            return torch.cat([logp, ids.float()], -1)  # one tensor, so a failure NaNs both

        self._score(batch, domains, micro_batch, own_prompts, top, packed, max_tokens)
        ids = torch.nan_to_num(packed[..., k:], nan=0.0).long()
        return packed[..., :k], ids

    @torch.no_grad()
    def logits(
        self,
        batch: SequenceBatch,
        domains: Sequence[str],
        own_prompts: dict[str, SequenceBatch] | None = None,
    ) -> torch.Tensor:
        """Full teacher logits `[n, T, V]` of one micro-batch: the caller chunks, so the whole
        batch's logits never exist at once."""
        n, t = batch.response_mask_N_T.shape
        # the output head's rows: an image-text model's config keeps its vocabulary elsewhere
        vocab = {m.get_output_embeddings().weight.shape[0] for m in self.models_by_ref.values()}
        out = torch.zeros((n, t, max(vocab)), device=batch.input_ids_N_L.device)
        return self._score(batch, domains, 0, own_prompts, response_logits, out, trim=False)


@torch.no_grad()
def ema_update(target, source, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source, parameter by parameter."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s.detach().to(t), 1.0 - decay)
