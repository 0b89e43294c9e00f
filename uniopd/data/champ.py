"""CHAMP (270 competition math problems) from the copy shipped inside the `champ-dataset` package.

The package marks math spans with `@@...@@`; its `text` and `answer` properties strip the markers,
which is what we read. Answers are kept verbatim even when they are sentences ("0 is the only
possible value"): the math verifier decides what matches, not this loader. The dataset's stepwise
solution becomes the reference `solution`, ending in `\\boxed{answer}` like the built-in math
solutions so a warm start teaches the format the verifier grades. The prompt asks for `\\boxed{}`
because the verifier grades only the last `\\boxed{}`, and a pretrained chat model needs telling.
"""

from __future__ import annotations

from uniopd.data.errors import DataError
from uniopd.tasks.problem import Problem

VERSION = "v0"  # the only dataset file the package ships
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def load_champ() -> list[Problem]:
    """The 270 problems in the package's order (by category, then number)."""
    try:
        import champ_dataset
    except ImportError as err:
        raise DataError(
            "champ: needs the `champ-dataset` package (pip install champ-dataset)"
        ) from err
    dataset = champ_dataset.load(VERSION)
    return [_problem(p) for p in dataset.problems.values()]


def _problem(p) -> Problem:
    steps = [step.text for step in p.solution.steps] if p.solution and p.solution.steps else []
    solution = "\n".join(steps + [f"The answer is \\boxed{{{p.answer}}}."]) if steps else None
    return Problem(
        id=p.identifier,
        domain="math",
        prompt=f"{p.text}\n\n{INSTRUCTION}",
        answer=p.answer,
        solution=solution,
        meta={"category": p.category},
    )
