r"""A new domain in one call: its verifier, and optionally its data source, under the domain's name.

A verifier is a class whose `grade(problems, completions)` returns one score per row: 1.0 correct,
0.0 incorrect (a missing or malformed answer included: bad model output never raises), None when
the grader itself broke; its constructor takes no required arguments. A data source is a function
`fn(rest) -> list[Problem]`: the experiment file's `<name>:<rest>` calls it with `rest`, and it
raises ValueError (or uniopd.data.DataError) for a `rest` it does not know. Each row's `domain`
routes it to the verifier (and, for distillation, the teacher) named like it.

Worked example, the recipe tests/test_extending_domain.py trains with (docs/extending.md):

import re

from uniopd.domains import register_domain
from uniopd.tasks.problem import Problem

class ParityVerifier:
    def grade(self, problems, completions):
        scores = []
        for problem, text in zip(problems, completions, strict=True):
            boxes = re.findall(r"\\boxed\{([^{}]*)\}", text)
            said = boxes[-1].strip().lower() if boxes else None
            scores.append(1.0 if said == problem.answer else 0.0)
        return scores

def parity_problems(split):
    if split not in ("train", "test"):
        raise ValueError(f"no split {split!r}; parity has train and test")
    first = 0 if split == "train" else 100
    return [
        Problem(
            id=f"parity-{n}",
            domain="parity",
            answer="odd" if n % 2 else "even",
            prompt=f"Is {n} even or odd? Answer in \\boxed{{}}.",
        )
        for n in range(first, first + 24)
    ]

register_domain(
    "parity",
    verifier=ParityVerifier,
    source=parity_problems,
    help="Is n even or odd? Graded on the last \\boxed{} word.",
)

after which an experiment file may say `data: {train: [parity:train], eval: [parity:test]}` (and
`teachers: {parity: ...}` for a distillation method). From a package outside uniopd, put these
lines in a module and name the module in the entry-point group `uniopd.verifiers`; importing it
registers both the verifier and the source.
"""

from __future__ import annotations

from collections.abc import Callable

from uniopd.data.sources import SOURCES
from uniopd.tasks.problem import Problem
from uniopd.verifiers import VERIFIERS


def register_domain(
    name: str,
    *,
    verifier: type,
    source: Callable[[str], list[Problem]] | None = None,
    help: str = "",
    origin: str | None = None,
) -> None:
    """Register `verifier` as the verifier of domain `name` and, when given, `source` as the data
    source of scheme `name` (so `data.train: [<name>:train]` reads it). `help` is the one line
    `uniopd list` shows (default: the first paragraph of each object's docstring). `origin` is
    the distribution `uniopd list` names (default: the plugin being loaded, else the distribution
    shipping `verifier`'s package)."""
    if not callable(getattr(verifier, "grade", None)):
        raise TypeError(
            f"register_domain({name!r}): the verifier must define "
            "grade(problems, completions) -> list[float | None]"
        )
    if source is not None and not callable(source):
        raise TypeError(
            f"register_domain({name!r}): the source must be a function "
            "fn(rest: str) -> list[Problem]"
        )
    # While a plugin's module loads, the registry reading it knows its distribution.
    loading = [getattr(r, "_origin", "uniopd") for r in (VERIFIERS, SOURCES)]
    origin = origin or next((o for o in loading if o != "uniopd"), None) or _origin(verifier)
    VERIFIERS.register(name, verifier, help=help or None, origin=origin)
    if source is not None:
        SOURCES.register(name, source, help=help or None, origin=origin)


def _origin(obj: object) -> str:
    """The distribution that ships `obj`'s top-level package, else that package's name."""
    package = (getattr(obj, "__module__", None) or "?").split(".")[0]
    if package == "uniopd":
        return package
    from importlib.metadata import packages_distributions

    return (packages_distributions().get(package) or [package])[0]
