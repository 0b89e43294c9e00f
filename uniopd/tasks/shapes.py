"""Synthetic visual domain: count coloured squares in a small picture, answered in \\boxed{}.

The picture is a 4 x 4 grid of 8-pixel cells (32 x 32 pixels), some cells holding a filled square
in one of four colours. The question asks for the number of squares of one, two or three colours
together (the level), so a student must both read the picture and add, and the level spreads a
half-trained student over the difficulty range as the text domains do.

Each problem also carries a text rendering of the same content ("The picture shows 3 red squares
and 2 blue squares."), in `meta["rendering"]`: what a text teacher reads in cross-modal
distillation, where the student sees only the picture. One cell is one vision patch of the tiny
multimodal student, so counting is a matter of telling the patches' colours apart.
"""

from __future__ import annotations

import io
import random

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
MIN_SHAPES, MAX_SHAPES = 2, 9


def make_problem(rng: random.Random, level: int) -> Problem:
    n = rng.randint(MIN_SHAPES, MAX_SHAPES)
    cells = rng.sample(range(GRID * GRID), n)
    colors = [rng.choice(list(COLORS)) for _ in cells]
    asked = sorted(rng.sample(list(COLORS), level), key=list(COLORS).index)
    counts = {c: colors.count(c) for c in COLORS}
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
        images=(draw(dict(zip(cells, colors))),),
    )


def rendering(counts: dict[str, int]) -> str:
    """The picture's content as text: every colour present, with its count."""
    parts = [f"{k} {c} square{'s' * (k != 1)}" for c, k in counts.items() if k]
    return f"The picture shows {_join(parts)}."


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
