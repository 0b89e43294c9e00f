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
    return Problem(id="", domain="math", prompt=prompt, answer=str(value), solution=solution,
                   meta={"level": level})


def slipped_solution(problem: Problem, rng: random.Random) -> str:
    """The reference solution with one result off by one, carried through to the answer.

    Warm-starting the student on a share of such solutions gives it what real students have: a
    usable but noisy distribution (right most of the time, unsure at the decision tokens).
    """
    steps = problem.solution.split(". ")[:-1]
    k = rng.randrange(len(steps))
    out, carry = [], None
    for i, step in enumerate(steps):
        lhs, value = step.rstrip(".").split(" = ")
        a, op, b = lhs.split(" ")
        a = int(a) if carry is None else carry
        value = a + int(b) if op == "+" else a - int(b)
        if i == k:
            value += rng.choice([-1, 1]) if value > 0 else 1
        out.append(f"{a} {op} {b} = {value}.")
        carry = value
    return " ".join(out) + f" The answer is \\boxed{{{carry}}}."
