"""The recipe of the tiny world: sizes and training budgets of every built-in model.

`default` is tuned so the whole world builds in a few minutes on a 2-core CPU, the experts are
strong on their domain, and the student starts far enough below them for distillation to have
work to do. `smoke` runs every stage of the same pipeline in seconds (meaningless models), for tests;
select it with UNIOPD_WORLD=smoke. Each recipe builds into its own directory.
"""

import copy
import os

DEFAULT = {
    # 4: v3's recipe, built through the chunked log-prob arithmetic (issue 11), whose rounding
    # differs from v3's full-vocabulary log-softmax: the weights are not v3's bit for bit, so the
    # world gets its own cache folder instead of sharing v3's name
    "version": 4,
    "seed": 0,
    "tokenizer": {"vocab_size": 512},
    "models": {
        # name: size (see models.SIZES), SFT domains and steps, then GRPO steps on those domains
        "teacher-math": {"size": "base", "domains": ["math"], "sft_steps": 800, "grpo_steps": 15},
        "teacher-code": {"size": "base", "domains": ["code"], "sft_steps": 800, "grpo_steps": 15},
        # strong-to-weak: a wider math expert (built only when an experiment names it)
        "teacher-math-large": {
            "size": "large",
            "domains": ["math"],
            "sft_steps": 800,
            "grpo_steps": 15,
        },
        # the student: one layer fewer, and a habit. `early_stop_rate` of its warm-start solutions
        # stop one step early (tasks/arith.early_stop_solution), so it knows the content but often
        # quits too soon: a shared behaviour the experts flag at one token. NOTES.md 2026-11-23
        # says why (random slips were facts OPD could not fix in minutes; the habit is not).
        # 2000 steps: with 1600 its content capped OPD about 10 points under the code expert.
        "student": {
            "size": "small",
            "domains": ["math", "code"],
            "sft_steps": 2000,
            "grpo_steps": 0,
            "early_stop_rate": 0.4,
        },
    },
    "sft": {"batch_size": 32, "lr": 5e-3},
    "grpo": {"group_size": 8, "prompts_per_batch": 16, "lr": 1e-4, "eval_prompts": 100},
}

SMOKE = copy.deepcopy(DEFAULT)
for _spec in SMOKE["models"].values():
    _spec["sft_steps"], _spec["grpo_steps"] = 3, min(_spec["grpo_steps"], 1)
SMOKE["grpo"].update(group_size=2, prompts_per_batch=2, eval_prompts=4)

RECIPES = {"default": DEFAULT, "smoke": SMOKE}


def active_recipe() -> dict:
    name = os.environ.get("UNIOPD_WORLD", "default")
    if name not in RECIPES:
        raise ValueError(
            f"UNIOPD_WORLD={name!r}: unknown tiny-world recipe; known: {sorted(RECIPES)}"
        )
    return RECIPES[name]
