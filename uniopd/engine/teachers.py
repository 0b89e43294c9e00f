"""Teachers as routed services: each rollout is scored by its domain's expert (METHOD 5).

One model is loaded once however many domains name it. Scoring is a prefill over the student's
own tokens; if a teacher call fails, its rows come back NaN, which the OPD advantage turns into
advantage 0 and loss mask 0 instead of stopping the run.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.sequences import SequenceBatch

log = logging.getLogger(__name__)


class UnknownDomainError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class TeacherPool:
    def __init__(self, models_by_ref: dict, refs_by_domain: dict[str, str]):
        self.models_by_ref = models_by_ref
        self.refs_by_domain = refs_by_domain

    def ref_for(self, domain: str) -> str:
        if domain not in self.refs_by_domain:
            raise UnknownDomainError(
                f"no teacher for domain {domain!r}; teachers are named for "
                f"{sorted(self.refs_by_domain)} (add teachers.{domain} to the experiment file)")
        return self.refs_by_domain[domain]

    @torch.no_grad()
    def logprobs(self, batch: SequenceBatch, domains: Sequence[str],
                 micro_batch: int = 0) -> torch.Tensor:
        """Teacher log-probs of every response token, `[N, T]`, each row by its domain's teacher."""
        out = torch.full(batch.response_mask_N_T.shape, float("nan"),
                         device=batch.input_ids_N_L.device)
        by_ref: dict[str, list[int]] = {}
        for i, d in enumerate(domains):
            by_ref.setdefault(self.ref_for(d), []).append(i)
        for ref, rows in by_ref.items():
            model = self.models_by_ref[ref]
            step = micro_batch or len(rows)
            for start in range(0, len(rows), step):
                index = torch.tensor(rows[start:start + step], device=out.device)
                try:
                    out[index] = response_logprobs(model, batch.rows(index)).to(out.dtype)
                except Exception:  # noqa: BLE001 - a failed call masks its rows, the run goes on
                    log.exception("teacher %s failed on %d rollouts; their tokens are masked",
                                  ref, len(index))
        return out
