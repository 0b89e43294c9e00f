"""Synthetic describing task on the visual domain's pictures: "Describe the picture.", answered by
one sentence per kind of object in the picture (SENTINEL's setting, docs/method.md 9.3, at the
tiny world's scale).

The picture is the visual domain's shelf (uniopd/tasks/shapes.py: a 4 x 4 grid, one colour per
row); its objects are the coloured squares, one kind per colour. The reference description names
every colour present, in the rows' order, with its count:

    There are 3 red squares. There is 1 blue square.

The scene's ground truth travels in `meta`: `objects` (every colour's count, 0 for an empty row)
and `scene` (the layout as 16 letters, one per cell: what makes two pictures the same scene,
the key the simulated detectors draw their errors from). The level is the number of colours
present (1 to 4): the description's length in sentences.

The student's habit in this task (its warm start, builder/pipeline.py) is an object
hallucination: a share of its warm-start descriptions name one colour whose row is empty, in its
row's place, with a made-up count (`hallucinated_solution`). What CHAIR counts, and what
SENTINEL's pairs and a faithful teacher can remove.
"""

from __future__ import annotations

import random

from uniopd.tasks.problem import Problem
from uniopd.tasks.shapes import COLORS, GRID, MIN_SHAPES, draw, rendering

PROMPT = "Describe the picture."
LEVELS = (1, 2, 3, 4)  # colours present in the picture


def make_problem(rng: random.Random, level: int) -> Problem:
    """A picture with `level` colours present (1 to 4 squares each, at least MIN_SHAPES in all)."""
    present = rng.sample(list(COLORS), level)
    while True:
        counts = {c: (rng.randint(1, GRID) if c in present else 0) for c in COLORS}
        if sum(counts.values()) >= MIN_SHAPES:
            break
    layout: dict[int, str] = {}
    for row, (color, k) in enumerate(counts.items()):
        for column in rng.sample(range(GRID), k):
            layout[row * GRID + column] = color
    return Problem(
        id="",
        domain="describe",
        prompt=PROMPT,
        solution=reference_description(counts),
        meta={
            "level": level,
            "objects": counts,
            "scene": scene_key(layout),
            "rendering": rendering(counts),
        },
        images=(draw(layout),),
    )


def sentence(color: str, count: int) -> str:
    """The one sentence that names one kind of object: "There are 3 red squares."."""
    if count == 1:
        return f"There is 1 {color} square."
    return f"There are {count} {color} squares."


def reference_description(counts: dict[str, int]) -> str:
    """Every colour present, in the rows' order, one sentence each."""
    return " ".join(sentence(c, k) for c, k in counts.items() if k > 0)


def hallucinated_solution(problem: Problem, rng: random.Random) -> str:
    """The reference description with one sentence about an empty row added in that row's place,
    with a count drawn from 1 to 4 (the student's habit). A picture with every row filled has no
    absent object to invent: its reference is returned."""
    counts = problem.meta["objects"]
    absent = [c for c, k in counts.items() if k == 0]
    if not absent:
        return problem.solution or reference_description(counts)
    invented = rng.choice(absent)
    claimed = {c: (rng.randint(1, GRID) if c == invented else k) for c, k in counts.items()}
    return reference_description(claimed)


def early_stop_solution(problem: Problem) -> str:
    """A description has no step to skip: the visual student's habit rate (`early_stop_rate`)
    leaves it as it is; this task's own habit is `hallucinated_solution`."""
    return problem.solution or reference_description(problem.meta["objects"])


def scene_key(layout: dict[int, str]) -> str:
    """The layout as one letter per cell (row-major; '.' empty): the scene's identity."""
    return "".join(layout[i][0] if i in layout else "." for i in range(GRID * GRID))
