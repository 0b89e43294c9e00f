"""Preference pairs from the world itself (docs/method.md 9.4): within each prompt's group, the
student's own rollouts graded by the domain's verifier give (correct, incorrect) pairs.

A rollout enters no pair when it is ungraded (the grader broke), balanced out by online balancing,
empty, or, when the score reads the teacher, left without a finite teacher score. A group with
only one outcome gives no pair (it has nothing to prefer).
"""

from __future__ import annotations

import torch

from uniopd.objectives.preference import Pairs


def quality_scores(
    source: str,
    rewards_N: torch.Tensor,
    mask_N_T: torch.Tensor,
    teacher_logp_N_T: torch.Tensor | None,
    file_score_N: torch.Tensor | None = None,
) -> torch.Tensor:
    """`[N]` each rollout's quality score S: verifier = its outcome (1 / 0), teacher = the
    teacher's mean log-prob of its response tokens (a sum would favour short answers), both =
    the two added, file = a pair file's scores (`file_score_N`). NaN where the score cannot be
    had."""
    outcome = rewards_N.float()
    if source == "verifier":
        return outcome
    if source == "file":
        assert file_score_N is not None, "score: file needs rows from a pair file"
        return file_score_N.float()
    assert teacher_logp_N_T is not None, "a teacher score needs the teacher's log-probs"
    real = mask_N_T > 0
    finite = torch.isfinite(teacher_logp_N_T) | ~real
    total = torch.where(real, torch.nan_to_num(teacher_logp_N_T), 0).sum(-1)
    mean = total / real.sum(-1).clamp(min=1)
    mean = mean.masked_fill(~finite.all(-1) | ~real.any(-1), float("nan"))
    return mean if source == "teacher" else outcome + mean


def rollout_pairs(
    rewards_N: torch.Tensor,
    group_ids_N: torch.Tensor,
    usable_N: torch.Tensor,
    score_N: torch.Tensor,
    pairing: str = "all",
    max_per_group: int | None = None,
) -> Pairs:
    """(correct, incorrect) pairs of every group among the `usable_N` rows with a finite score.
    `pairing` all: every combination; disjoint: the best-scored correct with the worst-scored
    incorrect, the second with the second, ... (each row in one pair at most). `max_per_group`
    keeps the pairs with the widest score margin. Deterministic: ties keep row order."""
    ok = usable_N.bool() & ~torch.isnan(rewards_N) & ~torch.isnan(score_N)
    chosen: list[int] = []
    rejected: list[int] = []
    for g in torch.unique(group_ids_N).tolist():
        rows = ok & (group_ids_N == g)
        good = _by_score(torch.nonzero(rows & (rewards_N > 0.5)).flatten(), score_N, True)
        bad = _by_score(torch.nonzero(rows & (rewards_N <= 0.5)).flatten(), score_N, False)
        if pairing == "disjoint":
            group = list(zip(good, bad))
        else:
            group = [(c, r) for c in good for r in bad]
        if max_per_group is not None:
            # widest margin first; a stable sort keeps the order above among equal margins
            group.sort(key=lambda cr: -float(score_N[cr[0]] - score_N[cr[1]]))
            group = group[:max_per_group]
        chosen += [c for c, _ in group]
        rejected += [r for _, r in group]
    device = rewards_N.device
    return Pairs(
        torch.tensor(chosen, dtype=torch.long, device=device),
        torch.tensor(rejected, dtype=torch.long, device=device),
        score_N,
    )


def _by_score(rows: torch.Tensor, score_N: torch.Tensor, best_first: bool) -> list[int]:
    return sorted(rows.tolist(), key=lambda i: float(score_N[i]), reverse=best_first)
