"""The visual domain's generator: the picture, its text rendering, the question and the answer
all describe the same content, read back here from the pixels alone."""

import random
import re

import pytest

from uniopd.data.images import open_image
from uniopd.tasks import shapes


def cells_from_pixels(png: bytes) -> dict[int, str]:
    """Colour name per occupied cell, from each cell's centre pixel."""
    image = open_image(png)
    assert image.size == (shapes.SIZE, shapes.SIZE)
    by_rgb = {rgb: name for name, rgb in shapes.COLORS.items()}
    found = {}
    for cell in range(shapes.GRID * shapes.GRID):
        x, y = (cell % shapes.GRID) * shapes.CELL, (cell // shapes.GRID) * shapes.CELL
        centre = image.getpixel((x + shapes.CELL // 2, y + shapes.CELL // 2))
        assert image.getpixel((x, y)) == shapes.BACKGROUND  # the margin keeps cells apart
        if centre != shapes.BACKGROUND:
            found[cell] = by_rgb[centre]
    return found


@pytest.mark.parametrize("level", shapes.LEVELS)
def test_picture_rendering_question_and_answer_agree(level):
    rng = random.Random(level)
    for _ in range(50):
        p = shapes.make_problem(rng, level)
        counts = {c: 0 for c in shapes.COLORS}
        for color in cells_from_pixels(p.images[0]).values():
            counts[color] += 1
        assert shapes.MIN_SHAPES <= sum(counts.values()) <= shapes.MAX_SHAPES
        assert p.meta["rendering"] == shapes.rendering(counts)
        for color, k in counts.items():  # the rendering names each colour present with its count
            assert (f"{k} {color} square" in p.meta["rendering"]) == (k > 0)
        asked = [c for c in shapes.COLORS if re.search(rf"\b{c}\b", p.prompt)]
        assert len(asked) == level == p.meta["level"]
        assert p.answer == str(sum(counts[c] for c in asked))
        assert p.solution.endswith(f"\\boxed{{{p.answer}}}.")
        assert p.domain == "visual" and "<image>" not in p.prompt


def test_the_generator_is_deterministic_and_varied():
    a = [shapes.make_problem(random.Random(7), 2) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(0)
    pictures = {shapes.make_problem(rng, 1).images[0] for _ in range(200)}
    assert len(pictures) > 190
