"""The built-in synthetic datasets of the tiny world, as deterministic, disjoint splits.

`builtin:math/train` and friends resolve here. A problem's split is decided by a hash of its prompt,
so no prompt of the held-out `test` split is ever seen in `sft` (warm starts) or `train` (RL / OPD),
however many problems are drawn.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from functools import cache

from uniopd.tasks import arith, pyfunc
from uniopd.tasks.problem import Problem

GENERATORS = {"math": arith, "code": pyfunc}
# split -> (hash bucket range out of 100, number of problems)
SPLITS = {
    "sft": (range(0, 60), 6000),
    "train": (range(60, 90), 2000),
    "test": (range(90, 100), 200),
}
SEED = 20260513


def _bucket(prompt: str) -> int:
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 100


@cache
def _cached(domain: str, split: str) -> tuple[Problem, ...]:
    module = GENERATORS[domain]
    buckets, size = SPLITS[split]
    rng = random.Random(f"{SEED}-{domain}-{split}")
    seen: set[str] = set()
    out: list[Problem] = []
    while len(out) < size:
        problem = module.make_problem(rng, rng.choice(module.LEVELS))
        if problem.prompt in seen or _bucket(problem.prompt) not in buckets:
            continue
        seen.add(problem.prompt)
        out.append(replace(problem, id=f"{domain}-{split}-{len(out):05d}"))
    return tuple(out)


def builtin_problems(domain: str, split: str) -> list[Problem]:
    """The problems of one built-in domain split (`sft`, `train` or `test`)."""
    if domain not in GENERATORS:
        raise ValueError(f"unknown built-in domain {domain!r}; known: {sorted(GENERATORS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for builtin:{domain}; known: {sorted(SPLITS)}")
    return list(_cached(domain, split))
