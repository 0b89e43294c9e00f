"""Synthetic `math` domain: multi-step arithmetic word problems answered in \\boxed{}.

Difficulty is the number of steps (level 1..4): a model that gets one step right with probability p
solves a level-k problem with about p**k, so a half-trained student spreads over the whole range,
which is what the paper's difficulty histograms need. Quantities stay in 0..20 so that the facts a
tiny model must learn (small sums and differences) fit in a few minutes of CPU training.
"""

from __future__ import annotations

import random
from dataclasses import replace

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


# --- world v6: chains with a latent difficulty -----------------------------------------------
# A v6 problem records its plan (start value and events) in `meta`, so that a warm start can
# write it stopped after any step or with an event misread (tasks/chains.py), and it carries a
# difficulty class: the index of its protagonist in NAMES. The world's recipe gives each class
# the student's chance of quitting at every step (world/recipe.py), so the student's pass rate on
# a prompt is a property of the prompt, visible in every sentence of it.
DIFFICULTY_CLASSES = len(NAMES)


def make_chain(rng: random.Random, level: int) -> Problem:
    """A v6 problem of `level` chained events (v5's arithmetic, phrases and value range)."""
    cls = rng.randrange(DIFFICULTY_CLASSES)
    name, item = NAMES[cls], rng.choice(ITEMS)
    start = value = rng.randint(1, 9)
    events: list[tuple[str, int]] = []
    for _ in range(level):
        gain = value + 1 <= MAX_VALUE and (value == 0 or rng.random() < 0.5)
        n = rng.randint(1, min(9, MAX_VALUE - value)) if gain else rng.randint(1, min(9, value))
        events.append((rng.choice(GAINS if gain else LOSSES), n))
        value += n if gain else -n
    story = " ".join(f"{name} {phrase.format(n=n)}." for phrase, n in events)
    meta = {"level": level, "difficulty_class": cls, "start": start, "events": events}
    problem = Problem(
        id="",
        domain="math",
        prompt=f"{name} has {start} {item}. {story} How many {item} now?",
        answer=str(value),
        meta=meta,
    )
    return replace(problem, solution=chain_solution(problem))


def chain_solution(problem: Problem, done: int | None = None, misread=frozenset()) -> str:
    """The worked solution of a v6 problem after its first `done` events (all by default), the
    events at the indices in `misread` taken with the opposite sign (the soft-skill deficit's
    error: the story read, the arithmetic of the phrase wrong)."""
    value, lines = problem.meta["start"], []
    for i, (phrase, n) in enumerate(problem.meta["events"][:done]):
        sign = (1 if phrase in GAINS else -1) * (-1 if i in misread else 1)
        lines.append(f"{value} {'+' if sign > 0 else '-'} {n} = {value + sign * n}.")
        value += sign * n
    return " ".join([*lines, f"The answer is \\boxed{{{value}}}."])
