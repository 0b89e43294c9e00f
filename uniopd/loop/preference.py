"""The pair objectives' part of the policy update (docs/method.md 9.5).

A pair loss L couples two rows that may sit in different micro-batches. Its gradient is
sum_{i,t} dL/d(log pi_{i,t}) * grad log pi_{i,t}, so once per epoch (while the weights stay put:
one optimizer step per epoch) the update evaluates L on the whole batch's current log-probs from
a no-grad pass, back-propagates it to those log-probs alone (`coefficients`), and each
micro-batch adds sum(coefficient * log pi) to its loss. The step's gradient is then L's exactly,
for any micro-batching and with the memory of one micro-batch. The first epoch reuses pi_old's
log-probs when the trainer computed them (they are the current weights' then).

Pairs are built once per step from the whole batch (uniopd.loop.pairs); with several processes
each holds whole groups, so its pairs are its own, and the loss is a mean over every process's
pairs (the gradients are summed across processes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from uniopd.algorithms.dpo import implicit_reward_margin, sequence_logps
from uniopd.engine.distributed import Dist
from uniopd.loop.pairs import quality_scores, rollout_pairs
from uniopd.objectives.preference import Pairs, PairSignals


@dataclass
class PairStep:
    """One step's pairs (per pair objective) and what the first epoch measured on them."""

    pairs: dict[str, Pairs]
    n_global: dict[str, float]  # pairs of every process, the mean's denominator
    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class PreferenceUpdate:
    def __init__(self, objectives: list, dist: Dist):
        """`objectives`: (name, coef, objective) triples; only the pair objectives are kept."""
        self.pair = [(name, coef, o) for name, coef, o in objectives if o.kind == "pair"]
        self.dist = dist

    @property
    def active(self) -> bool:
        return bool(self.pair)

    def pairs(
        self,
        rewards_N: torch.Tensor,
        group_ids_N: torch.Tensor,
        keep_N: torch.Tensor,
        mask_N_T: torch.Tensor,
        teacher_logp_N_T: torch.Tensor | None,
        file_score_N: torch.Tensor | None = None,
        pair_weight_N_T: torch.Tensor | None = None,
    ) -> PairStep:
        """Each pair objective's pairs of this batch, by its own options (score, pairing).
        `file_score_N`: each row's score from a pair file (uniopd.loop.pair_batches), whose rows
        come as groups of two, chosen (reward 1) and rejected (reward 0): one pair per group.
        `pair_weight_N_T`: where each row's pair is decided (uniopd.loop.sentinel's sentences)."""
        usable = keep_N.bool() & (mask_N_T.sum(-1) > 0)  # an empty response is no answer
        out: dict[str, Pairs] = {}
        for name, _, o in self.pair:
            score = quality_scores(
                o.options.score, rewards_N, mask_N_T, teacher_logp_N_T, file_score_N
            )
            out[name] = rollout_pairs(
                rewards_N,
                group_ids_N,
                usable,
                score,
                o.options.pairing,
                o.options.max_pairs_per_group,
            )
            out[name].weight_N_T = pair_weight_N_T
        counts = {name: self.dist.sum(float(len(p))) for name, p in out.items()}
        return PairStep(out, counts)

    def coefficients(
        self,
        step: PairStep,
        logp_N_T: torch.Tensor,
        reference_logp_N_T: torch.Tensor,
        mask_N_T: torch.Tensor,
        record: bool,
    ) -> torch.Tensor | None:
        """`[N, T]` dL/d(log pi) of the weighted pair losses at the current log-probs `logp_N_T`;
        None when no objective has a pair. `record`: keep each loss and the pair metrics."""
        leaf = logp_N_T.detach().float().requires_grad_(True)
        ref = reference_logp_N_T.float()
        total = None
        for name, coef, objective in self.pair:
            pairs, n = step.pairs[name], step.n_global[name]
            if n == 0:  # no group with both outcomes this step: nothing to prefer
                if record:
                    step.losses[name] = 0.0
                    step.metrics[f"pairs/{name}/count"] = 0.0
                continue
            per_pair = objective.pair_loss(PairSignals(leaf, ref, mask_N_T, pairs))
            loss = per_pair.sum() / n  # the mean over every process's pairs
            if record:
                step.losses[name] = self.dist.sum(float(loss.detach()))
                step.metrics.update(self._metrics(name, pairs, leaf.detach(), ref, mask_N_T, n))
            total = coef * loss if total is None else total + coef * loss
        if total is None:
            return None
        total.backward()
        return leaf.grad

    def _metrics(self, name, pairs: Pairs, logp_N_T, ref_N_T, mask_N_T, n: float) -> dict:
        """The pair count and, DPO's usual diagnostics, the share of pairs whose implicit reward
        already prefers the chosen response and the mean implicit reward margin (summed log-probs,
        before this step's update)."""
        seq, ref = sequence_logps(logp_N_T, mask_N_T), sequence_logps(ref_N_T, mask_N_T)
        c, r = pairs.chosen_P, pairs.rejected_P
        margin = implicit_reward_margin(seq[c], seq[r], ref[c], ref[r])
        return {
            f"pairs/{name}/count": n,
            f"pairs/{name}/reward_accuracy": self.dist.sum(float((margin > 0).float().sum())) / n,
            f"pairs/{name}/margin": self.dist.sum(float(margin.sum())) / n,
        }
