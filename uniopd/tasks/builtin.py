"""The built-in synthetic datasets of the tiny world, as deterministic, disjoint splits.

`builtin:math/train` and friends resolve here. A problem's split is decided by a hash of its prompt
(and its picture, in the visual domain), so no problem of the held-out `test` split is ever seen in
`sft` (warm starts) or `train` (RL / OPD), however many problems are drawn.

Which problems a split holds depends on the world (its recipe's `data` settings): up to world v5
the generators' `make_problem` at levels 1-4; from v6 their `make_chain` (problems with a
difficulty class and a recorded plan), the warm-start split at every horizon up to
`max_horizon`, the `train` and `test` splits at the world's `horizon` (levels 1-4 when unset),
each split as large as `sizes` says (v6: a larger `test` split, for evaluations with power).
A `builtin:<domain>/<split>` reference resolves in the world a process selected
(world/recipe.select_world puts its data settings in the environment, as it does for models).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import replace
from functools import cache

from uniopd.tasks import arith, describe, pyfunc, shapes
from uniopd.tasks.problem import Problem

GENERATORS = {"math": arith, "code": pyfunc, "visual": shapes, "describe": describe}
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


# The data settings of the selected world (world/recipe.select_world), for the processes it starts
DATA_ENV = "UNIOPD_WORLD_DATA"
CHAIN_DOMAINS = ("math", "code")  # the domains with v6 chains (the visual domain is v5's)


def select_data(settings: dict | None) -> None:
    """`builtin:` data of this process and its children from a world with these `data` settings
    (None or {}: the plain splits of worlds up to v5)."""
    if settings:
        os.environ[DATA_ENV] = json.dumps(settings, sort_keys=True)
    else:
        os.environ.pop(DATA_ENV, None)


def selected_data() -> dict:
    raw = os.environ.get(DATA_ENV)
    return json.loads(raw) if raw else {}


def _levels(module, split: str, data: dict) -> tuple[int, ...]:
    if split == "sft":  # a warm start sees every horizon the world can ask for
        return tuple(range(1, data["max_horizon"] + 1))
    return (data["horizon"],) if data.get("horizon") else module.LEVELS


@cache
def _cached(domain: str, split: str, data_json: str = "{}") -> tuple[Problem, ...]:
    module = GENERATORS[domain]
    buckets, size = SPLITS[split]
    rng = random.Random(f"{SEED}-{domain}-{split}")
    data = json.loads(data_json)
    chains = data.get("chains") and domain in CHAIN_DOMAINS
    size = data.get("sizes", {}).get(split, size) if chains else size
    if chains:  # a stream of its own per horizon (the warm-start split has every horizon)
        horizon = None if split == "sft" else data.get("horizon")
        rng = random.Random(f"{SEED}-v6-{domain}-{split}-{horizon}")
    make = module.make_chain if chains else module.make_problem
    levels = _levels(module, split, data) if chains else module.LEVELS
    seen: set[str] = set()
    out: list[Problem] = []
    # a short horizon has few distinct problems (code at horizon 1: 12 names x 14 operations, a
    # tenth of them in `test`): a split holds what 20 draws per problem find, never loops forever
    limit, draws = (20 * size if chains else float("inf")), 0
    while len(out) < size and draws < limit:
        draws += 1
        problem = make(rng, rng.choice(levels))
        identity = _identity(problem)
        if identity in seen or _bucket(identity) not in buckets:
            continue
        seen.add(identity)
        out.append(replace(problem, id=f"{domain}-{split}-{len(out):05d}"))
    return tuple(out)


# views of a domain: `visual-rendered` is the visual domain as its text teacher reads it (each
# picture's text rendering before the question, no picture), to measure that teacher on its own
VIEWS = {"visual-rendered": ("visual", shapes.text_problem)}


def builtin_problems(domain: str, split: str, data: dict | None = None) -> list[Problem]:
    """The problems of one built-in domain split (`sft`, `train` or `test`), or of a view of
    one (VIEWS), in a world with these `data` settings (default: the selected world's)."""
    data = selected_data() if data is None else data
    if domain in VIEWS:
        base, view = VIEWS[domain]
        return [view(p) for p in builtin_problems(base, split, data)]
    if domain not in GENERATORS:
        known = sorted([*GENERATORS, *VIEWS])
        raise ValueError(f"unknown built-in domain {domain!r}; known: {known}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for builtin:{domain}; known: {sorted(SPLITS)}")
    return list(_cached(domain, split, json.dumps(data, sort_keys=True)))
