"""Synthetic visual domain: count coloured squares in a small picture, answered in \\boxed{}.

The picture is a 4 x 4 grid of 8-pixel cells (32 x 32 pixels), a shelf of squares: each row holds
the squares of one colour (red, green, blue, yellow from the top), 0 to 4 of them in random cells
of the row. The question asks for the number of squares of one, two or three colours together
(the level), so a student must both read the picture and add, and the level spreads a
half-trained student over the difficulty range as the text domains do. (Squares scattered over
the whole grid were tried first: a model as small as the tiny world's then read fewer than 60 %
of the pictures after minutes of training, too few for a teacher.)

Each problem also carries a text rendering of the same content ("The picture shows 3 red, 0 green,
2 blue and 0 yellow squares."), in `meta["rendering"]`: what a text teacher reads in cross-modal
distillation, where the student sees only the picture. One cell is one vision patch of the tiny
multimodal student, so counting is a matter of telling the patches' colours apart.
"""

from __future__ import annotations

import io
import random
from dataclasses import replace

from uniopd.tasks.problem import Problem

GRID, CELL, MARGIN = 4, 8, 1  # cells per side, pixels per cell, blank border inside a cell
SIZE = GRID * CELL
BACKGROUND = (255, 255, 255)
COLORS = {  # name -> RGB, in the order renderings and questions list them
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 190, 20),
}
LEVELS = (1, 2, 3)  # colours to count together
# how a text teacher reads a problem (cross-modal): experiments/multimodal/cross_modal.yaml gives
# the same template as data.teacher_templates.visual
TEXT_TEMPLATE = "{rendering} {prompt}"
MIN_SHAPES, MAX_SHAPES = 2, 9


def make_problem(rng: random.Random, level: int) -> Problem:
    while True:
        counts = {c: rng.randint(0, GRID) for c in COLORS}
        if MIN_SHAPES <= sum(counts.values()) <= MAX_SHAPES:
            break
    layout = {}
    for row, (color, k) in enumerate(counts.items()):
        for column in rng.sample(range(GRID), k):
            layout[row * GRID + column] = color
    asked = sorted(rng.sample(list(COLORS), level), key=list(COLORS).index)
    answer = sum(counts[c] for c in asked)
    prompt = f"How many {_join(asked)} squares are there{' together' * (level > 1)}?"
    work = " + ".join(f"{counts[c]} {c}" for c in asked)
    solution = (f"{work} = {answer}." if level > 1 else f"{work}.") + (
        f" The answer is \\boxed{{{answer}}}."
    )
    return Problem(
        id="",
        domain="visual",
        prompt=prompt,
        answer=str(answer),
        solution=solution,
        meta={"level": level, "rendering": rendering(counts)},
        images=(draw(layout),),
    )


def early_stop_solution(problem: Problem) -> str:
    """The reference solution one step short, the tiny student's habit as in the text domains
    (tasks/arith.early_stop_solution): only the first colour asked is counted and boxed. A
    one-colour question has no step to skip."""
    if problem.meta["level"] == 1:
        return problem.solution
    first = problem.solution.split(" + ", 1)[0]
    return f"{first}. The answer is \\boxed{{{first.split()[0]}}}."


def text_problem(problem: Problem) -> Problem:
    """The problem as a text teacher reads it: the rendering before the question, no picture
    (TEXT_TEMPLATE; what an experiment's data.teacher_templates.visual gives at run time)."""
    prompt = TEXT_TEMPLATE.replace("{rendering}", problem.meta["rendering"])
    return replace(problem, prompt=prompt.replace("{prompt}", problem.prompt), images=())


def rendering(counts: dict[str, int]) -> str:
    """The picture's content as text: the count of every colour, in the rows' order (a tiny text
    model finds a colour's count at the same place every time, as the picture's reader finds it
    in the same row)."""
    parts = [f"{k} {c}" for c, k in counts.items()]
    return f"The picture shows {_join(parts)} squares."


def draw(layout: dict[int, str]) -> bytes:
    """The picture as PNG bytes: `layout` maps a cell index (row-major) to a colour name."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for cell, color in layout.items():
        x, y = (cell % GRID) * CELL + MARGIN, (cell // GRID) * CELL + MARGIN
        pen.rectangle((x, y, x + CELL - 2 * MARGIN - 1, y + CELL - 2 * MARGIN - 1), COLORS[color])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
