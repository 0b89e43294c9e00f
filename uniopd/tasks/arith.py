"""Synthetic `math` domain: multi-step arithmetic word problems answered in \\boxed{}.

Difficulty is the number of steps (level 1..4): a model that gets one step right with probability p
solves a level-k problem with about p**k, so a half-trained student spreads over the whole range,
which is what the paper's difficulty histograms need. Quantities stay in 0..20 so that the facts a
tiny model must learn (small sums and differences) fit in a few minutes of CPU training.
"""

from __future__ import annotations

import random

from uniopd.tasks.problem import Problem

NAMES = ["Ana", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jia", "Kai", "Lena"]
ITEMS = ["apples", "pens", "coins", "books", "shells", "cards", "stamps", "marbles"]
MAX_VALUE = 20
LEVELS = (1, 2, 3, 4)

# (phrase, sign): the phrase is the story, the sign the arithmetic it stands for.
GAINS = ["gets {n} more", "finds {n} more", "buys {n} more"]
LOSSES = ["gives away {n}", "loses {n}", "sells {n}"]


def make_problem(rng: random.Random, level: int) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(1, 9)
    story = [f"{name} has {value} {item}."]
    work = []
    for _ in range(level):
        can_gain = value + 1 <= MAX_VALUE
        gain = can_gain and (value == 0 or rng.random() < 0.5)
        if gain:
            n = rng.randint(1, min(9, MAX_VALUE - value))
            story.append(f"{name} " + rng.choice(GAINS).format(n=n) + ".")
            work.append(f"{value} + {n} = {value + n}.")
            value += n
        else:
            n = rng.randint(1, min(9, value))
            story.append(f"{name} " + rng.choice(LOSSES).format(n=n) + ".")
            work.append(f"{value} - {n} = {value - n}.")
            value -= n
    story.append(f"How many {item} now?")
    prompt = " ".join(story)
    solution = " ".join(work) + f" The answer is \\boxed{{{value}}}."
    return Problem(
        id="",
        domain="math",
        prompt=prompt,
        answer=str(value),
        solution=solution,
        meta={"level": level},
    )


def early_stop_solution(problem: Problem) -> str:
    """The reference solution one step short: the last event is left out and the value before it
    is boxed. The work shown stays correct, so the only flaw is stopping early.

    This is the tiny student's habit (a share of its warm start teaches it; see world/recipe.py):
    one shared behaviour, flagged by the expert at a single token, that on-policy distillation can
    remove. Off-by-one arithmetic slips were tried first and were not removed in minutes
    (docs/journal.md): they are many prompt-specific facts, not one behaviour.
    """
    steps = problem.solution.split(". ")[:-1]
    if len(steps) == 1:
        start = problem.prompt.split(" has ", 1)[1].split(" ", 1)[0]
        return f"The answer is \\boxed{{{start}}}."
    before_last = steps[-2].rstrip(".").split(" = ")[1]
    return ". ".join(steps[:-1]) + f". The answer is \\boxed{{{before_last}}}."
