"""Domain verifiers: turn (problem, completion) pairs into scores.

    from uniopd.verifiers import get_verifier
    scores = get_verifier("math").grade(problems, completions)  # list[float | None]

1.0 correct, 0.0 incorrect (including no answer, no code, wrong format), None when the grader itself
broke (math-verify raised or timed out, the sandbox could not run). Bad model output never raises.

Modules are imported on demand: math-verify pulls in sympy (a second of start-up), and the code
sandbox's server process imports this package and should not pay for it.
"""

from __future__ import annotations

import importlib

# name -> (module, class)
_VERIFIERS = {
    "math": ("uniopd.verifiers.math", "MathVerifier"),
    "code": ("uniopd.verifiers.code", "CodeVerifier"),
}
VERIFIER_NAMES = tuple(_VERIFIERS)


def get_verifier(name: str, **kwargs):
    """A new verifier for a domain; kwargs go to its constructor (e.g. `limits=` for code)."""
    if name not in _VERIFIERS:
        raise ValueError(f"unknown verifier {name!r}; known verifiers: {', '.join(VERIFIER_NAMES)}")
    module, cls = _VERIFIERS[name]
    return getattr(importlib.import_module(module), cls)(**kwargs)


def grade_by_domain(verifiers: dict, problems, completions) -> list:
    """Grade a mixed-domain batch, each row by its domain's verifier (one call per domain)."""
    scores: list = [None] * len(problems)
    by_domain: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        by_domain.setdefault(p.domain, []).append(i)
    for domain, idx in by_domain.items():
        graded = verifiers[domain].grade([problems[i] for i in idx], [completions[i] for i in idx])
        for i, s in zip(idx, graded):
            scores[i] = s
    return scores
