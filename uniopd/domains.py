r"""A new domain in one call: its verifier, and optionally its data source, under the domain's name.

A verifier is a class whose `grade(problems, completions)` returns one score per row: 1.0 correct,
0.0 incorrect (a missing or malformed answer included: bad model output never raises), None when
the grader itself broke; its constructor takes no required arguments. A data source is a function
`fn(rest) -> list[Problem]`: the experiment file's `<name>:<rest>` calls it with `rest`, and it
raises ValueError (or uniopd.data.DataError) for a `rest` it does not know. Each row's `domain`
routes it to the verifier (and, for distillation, the teacher) named like it.

A worked example (a `parity` domain in about 25 lines) is in docs/extending.md, the very code
tests/test_extending_domain.py trains with. After registering, an experiment file may say
`data: {train: [parity:train], eval: [parity:test]}` (and `teachers: {parity: ...}` for a
distillation method). From a package outside uniopd, put the registration in a module and name
the module in the entry-point group `uniopd.verifiers`; importing it registers both the verifier
and the source.
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
