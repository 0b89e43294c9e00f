"""How a world v6 warm start writes a chained problem's solution: stopped at some step (the habit,
a chance of quitting at every step, so that a mistake anywhere fails the outcome) or with the
steps of some phrases misread (the soft-skill deficit). The domain modules write the text
(arith.chain_solution, pyfunc.chain_solution) from the plan each v6 problem records.
"""

from __future__ import annotations

import random

from uniopd.tasks import arith, pyfunc
from uniopd.tasks.problem import Problem

WRITERS = {"math": arith.chain_solution, "code": pyfunc.chain_solution}


def step_phrases(problem: Problem) -> list[str]:
    """The phrase of each step of a v6 problem, in order (math: the event's template, e.g.
    "sells {n}"; code: the operation's description)."""
    if problem.domain == "math":
        return [template for template, _ in problem.meta["events"]]
    return [pyfunc.OPERATIONS[i][0] for i in problem.meta["ops"]]


def stop_hazard_of(problem: Problem, hazard: float | list[float]) -> float:
    """The chance of quitting at each step: one for every prompt, or one per difficulty class."""
    if isinstance(hazard, list):
        return hazard[problem.meta["difficulty_class"]]
    return hazard


def warm_start_solution(
    problem: Problem,
    rng: random.Random,
    hazard: float | list[float] = 0.0,
    misread: dict | None = None,
) -> str:
    """The solution a v6 warm start shows for `problem`. Before each step the writer quits with
    the prompt's stop hazard (boxing the value so far); a step whose phrase is one of
    `misread["phrases"]` of its domain is written right with chance `misread["right_rate"]`,
    misread otherwise."""
    phrases = step_phrases(problem)
    chance = stop_hazard_of(problem, hazard)
    done = next((i for i in range(len(phrases)) if chance and rng.random() < chance), None)
    wrong = set()
    if misread:
        lacking = misread["phrases"].get(problem.domain, ())
        for i, phrase in enumerate(phrases[:done]):
            if any(word in phrase for word in lacking) and rng.random() >= misread["right_rate"]:
                wrong.add(i)
    return WRITERS[problem.domain](problem, done, frozenset(wrong))
