"""What training from a pair file (`data.pairs`) rules out: every setting that acts on sampled
rollouts. The pairs' responses come from the file, so there is no group to balance, no difficulty
to estimate and no advantage to compute; a setting that would silently do nothing is refused,
naming it (docs/method.md 9.4).
"""

from __future__ import annotations


def pair_file_conflicts(cfg) -> list[tuple[str, tuple[str, ...]]]:
    """(reason, fields) of each setting of `cfg` that contradicts `data.pairs`; none without it."""
    if cfg.data.pairs is None:
        return []
    out: list[tuple[str, tuple[str, ...]]] = []
    rollout_terms = [name for name, _, o in cfg.method.objectives() if o.kind != "pair"]
    if rollout_terms:
        out.append(
            (
                f"data.pairs trains offline on the file's pairs, but method '{cfg.method.name}' "
                f"has {', '.join(rollout_terms)}, which learn from sampled rollouts: use a pair "
                "objective alone (dpo, omni_dpo, cdpo), or data.train instead of data.pairs",
                ("data.pairs", "method.name"),
            )
        )
    if cfg.balance.online.enabled:
        out.append(
            (
                "online balancing masks sampled rollouts by their outcome, but data.pairs samples "
                "none: switch balance.online.enabled off",
                ("balance.online.enabled", "data.pairs"),
            )
        )
    if cfg.balance.offline.mode != "none":
        out.append(
            (
                f"balance.offline.mode = {cfg.balance.offline.mode} balances prompts by the "
                "student's pass rate, but data.pairs gives pairs, not prompts to grade: set "
                "balance.offline.mode: none",
                ("balance.offline.mode", "data.pairs"),
            )
        )
    if cfg.world.difficulty_skew is not None:
        out.append(
            (
                "world.difficulty_skew reshapes a list of graded prompts, but data.pairs gives "
                "pairs: drop world.difficulty_skew",
                ("world.difficulty_skew", "data.pairs"),
            )
        )
    return out


def reads_file_scores(cfg) -> bool:
    """Some pair objective reads the pair file's scores (`score: file`)."""
    return any(getattr(o.options, "score", None) == "file" for _, _, o in cfg.method.objectives())
