"""Settings that are legal but almost surely not meant: said as warnings, never refused (a short
smoke run may want exactly this). What cannot work at all (pass@k above n samples) is refused by
the schema instead.

    for field, why in doubts(cfg):
        print(f"warning: {field}: {why}")
"""

from __future__ import annotations

from uniopd.config.schema import ExperimentConfig

# a run longer than this that evaluates after every step spends most of its time evaluating
LONG_RUN_STEPS = 20
# world v6: an answer takes up to about 12 tokens a chained step (docs/world.md: 8 steps, up to
# 95 math tokens); fewer new tokens cut the longest answers off, and a cut answer fails
TOKENS_PER_HORIZON_STEP = 12


def doubts(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """(field, why) for each setting that looks unintended."""
    found = []
    train = cfg.train
    if train.data_epochs is None and train.warmup_steps > train.steps:
        found.append(
            (
                "train.warmup_steps",
                f"{train.warmup_steps} warm-up steps in a run of {train.steps} (train.steps): the "
                f"learning rate climbs for the whole run and never reaches train.lr = {train.lr:g}; "
                f"set train.warmup_steps to at most {train.steps} (0 = none)",
            )
        )
    if cfg.eval.every == 1 and train.data_epochs is None and train.steps > LONG_RUN_STEPS:
        found.append(
            (
                "eval.every",
                f"1 evaluates the held-out sets after each of the {train.steps} steps, which "
                "usually costs more than the training; e.g. eval.every="
                f"{max(train.steps // 10, 2)} gives ten evaluations",
            )
        )
    horizon = cfg.world.horizon
    if horizon is not None and cfg.rollout.max_new_tokens < TOKENS_PER_HORIZON_STEP * horizon:
        found.append(
            (
                "rollout.max_new_tokens",
                f"{cfg.rollout.max_new_tokens} new tokens for world.horizon {horizon}, whose "
                f"answers take up to about {TOKENS_PER_HORIZON_STEP * horizon} "
                f"({TOKENS_PER_HORIZON_STEP} a step): the longest are cut off and fail; set "
                f"rollout.max_new_tokens to at least {TOKENS_PER_HORIZON_STEP * horizon}",
            )
        )
    return found
