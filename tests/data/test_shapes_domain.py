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
        for color, k in counts.items():  # the rendering gives each colour's count
            assert f"{k} {color}" in p.meta["rendering"]
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


@pytest.mark.slow  # draws every picture of the three splits (about 2.5 s)
def test_the_builtin_splits_are_disjoint_pictures():
    """Splits are decided by the prompt and the picture together: the visual domain asks the
    same few questions of many pictures, and no held-out picture is ever trained on."""
    from uniopd.tasks.builtin import builtin_problems

    splits = {s: builtin_problems("visual", s) for s in ("sft", "train", "test")}
    assert [len(v) for v in splits.values()] == [6000, 2000, 200]
    key = lambda p: (p.prompt, p.images)  # noqa: E731
    seen = [{key(p) for p in problems} for problems in splits.values()]
    assert all(len(s) == len(splits[n]) for s, n in zip(seen, splits))  # no repeats
    assert not (seen[0] & seen[2]) and not (seen[1] & seen[2]) and not (seen[0] & seen[1])
    assert {p.meta["level"] for p in splits["test"]} == set(shapes.LEVELS)


def test_the_students_habit_and_the_text_teachers_view():
    rng = random.Random(3)
    two = shapes.make_problem(rng, 2)
    first = two.solution.split(" + ")[0]  # "2 red"
    assert (
        shapes.early_stop_solution(two) == f"{first}. The answer is \\boxed{{{first.split()[0]}}}."
    )
    one = shapes.make_problem(rng, 1)
    assert shapes.early_stop_solution(one) == one.solution  # no step to skip
    text = shapes.text_problem(two)
    assert text.images == () and text.prompt == f"{two.meta['rendering']} {two.prompt}"
    assert text.answer == two.answer and text.domain == "visual"
