"""Domain verifiers by name, open to plugins: turn (problem, completion) pairs into scores.

    from uniopd.verifiers import get_verifier
    scores = get_verifier("math").grade(problems, completions)  # list[float | None]

1.0 correct, 0.0 incorrect (including no answer, no code, wrong format), None when the grader itself
broke (math-verify raised or timed out, the sandbox could not run). Bad model output never raises.

A verifier is a class with that `grade` method, registered under the domain name it grades:
`@VERIFIERS.register("math")` in its module, an entry point in the group `uniopd.verifiers`, or
`uniopd.domains.register_domain` together with the domain's data source (docs/extending.md). A row
is graded by the verifier named like its domain unless the experiment's `verifiers` maps it.

Nothing heavy is imported here: the built-in modules load on the registry's first read (math-verify
pulls in sympy). The code sandbox's zygote imports none of the package: it runs the standard-library
files of this folder by path, inside bubblewrap (uniopd/verifiers/zygote.py).
"""

from __future__ import annotations

from uniopd.registry import Registry

VERIFIERS: Registry[type] = Registry(
    "verifier",
    "uniopd.verifiers",
    builtins=("uniopd.verifiers.math", "uniopd.verifiers.code", "uniopd.verifiers.describe"),
)


def get_verifier(name: str, **kwargs):
    """A new verifier for a domain; kwargs go to its constructor (e.g. `limits=` for code).
    An unknown name raises `RegistryError` (a ValueError) listing the known ones."""
    return VERIFIERS.get(name)(**kwargs)


def grade_by_domain(verifiers: dict, problems, completions) -> list:
    """Grade a mixed-domain batch, each row by its domain's verifier (one call per domain).

    Rows that repeat an earlier row's problem and completion are graded once and share its
    verdict: a student's samples repeat often (the tiny world's quickstart: about one in five
    rows is distinct), and the verdict is a function of the text. A verifier whose verdict for
    the same text may change from call to call, and which wants every copy drawn on its own,
    sets the class attribute `grades_each_copy = True`."""
    scores: list = [None] * len(problems)
    by_domain: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        by_domain.setdefault(p.domain, []).append(i)
    for domain, idx in by_domain.items():
        verifier = verifiers[domain]
        if getattr(verifier, "grades_each_copy", False):
            copy_of = {i: i for i in idx}
        else:
            # the problem object's identity, not its id field: two data sets may reuse an id
            first: dict[tuple[int, str], int] = {}
            copy_of = {i: first.setdefault((id(problems[i]), completions[i]), i) for i in idx}
        distinct = sorted(set(copy_of.values()))
        verdicts = verifier.grade(
            [problems[i] for i in distinct], [completions[i] for i in distinct]
        )
        if len(verdicts) != len(distinct):
            raise ValueError(
                f"verifier {type(verifier).__name__} (domain {domain!r}) returned "
                f"{len(verdicts)} scores for {len(distinct)} completions"
            )
        graded = dict(zip(distinct, verdicts))
        for i in idx:
            scores[i] = graded[copy_of[i]]
    return scores


__all__ = ["VERIFIERS", "get_verifier", "grade_by_domain"]
