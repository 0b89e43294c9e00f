"""The built-in synthetic datasets of the tiny world, as deterministic, disjoint splits.

`builtin:math/train` and friends resolve here. A problem's split is decided by a hash of its prompt
(and its picture, in the visual domain), so no problem of the held-out `test` split is ever seen in
`sft` (warm starts) or `train` (RL / OPD), however many problems are drawn.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from functools import cache

from uniopd.tasks import arith, pyfunc, shapes
from uniopd.tasks.problem import Problem

GENERATORS = {"math": arith, "code": pyfunc, "visual": shapes}
# split -> (hash bucket range out of 100, number of problems)
SPLITS = {
    "sft": (range(0, 60), 6000),
    "train": (range(60, 90), 2000),
    "test": (range(90, 100), 200),
}
SEED = 20260513


def _identity(problem: Problem) -> str:
    """What makes a problem itself: its prompt, and its pictures when it has any (the visual
    domain asks the same few questions of many pictures)."""
    pictures = "".join(hashlib.sha256(image).hexdigest() for image in problem.images)
    return problem.prompt + pictures


def _bucket(identity: str) -> int:
    return int(hashlib.sha256(identity.encode()).hexdigest()[:8], 16) % 100


@cache
def _cached(domain: str, split: str) -> tuple[Problem, ...]:
    module = GENERATORS[domain]
    buckets, size = SPLITS[split]
    rng = random.Random(f"{SEED}-{domain}-{split}")
    seen: set[str] = set()
    out: list[Problem] = []
    while len(out) < size:
        problem = module.make_problem(rng, rng.choice(module.LEVELS))
        identity = _identity(problem)
        if identity in seen or _bucket(identity) not in buckets:
            continue
        seen.add(identity)
        out.append(replace(problem, id=f"{domain}-{split}-{len(out):05d}"))
    return tuple(out)


# views of a domain: `visual-rendered` is the visual domain as its text teacher reads it (each
# picture's text rendering before the question, no picture), to measure that teacher on its own
VIEWS = {"visual-rendered": ("visual", shapes.text_problem)}


def builtin_problems(domain: str, split: str) -> list[Problem]:
    """The problems of one built-in domain split (`sft`, `train` or `test`), or of a view of
    one (VIEWS)."""
    if domain in VIEWS:
        base, view = VIEWS[domain]
        return [view(p) for p in builtin_problems(base, split)]
    if domain not in GENERATORS:
        known = sorted([*GENERATORS, *VIEWS])
        raise ValueError(f"unknown built-in domain {domain!r}; known: {known}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for builtin:{domain}; known: {sorted(SPLITS)}")
    return list(_cached(domain, split))
