"""Synthetic `code` domain: short Python functions described in words, graded by hidden tests.

Each problem chains `level` (1..4) operations on an integer argument; the response must define the
function, and the verifier runs it on hidden inputs in the sandbox. Difficulty grows with the chain
length for the same reason as in the math domain: every line is one more chance to slip.
"""

from __future__ import annotations

import random

from uniopd.tasks.problem import Problem

LEVELS = (1, 2, 3, 4)
FUNCTION_NAMES = ["f", "g", "h", "step", "calc", "update"]
ARG_NAMES = ["x", "n", "v", "a"]
TEST_INPUTS = [-7, -2, 0, 1, 3, 8, 13]

# (description, code with {a} for the argument and {n} for the constant, python function of (x, n))
OPERATIONS = [
    ("adds {n}", "{a} = {a} + {n}", lambda x, n: x + n),
    ("subtracts {n}", "{a} = {a} - {n}", lambda x, n: x - n),
    ("multiplies it by {n}", "{a} = {a} * {n}", lambda x, n: x * n),
    ("takes the remainder modulo {n}", "{a} = {a} % {n}", lambda x, n: x % n),
    ("divides it by {n} rounding down", "{a} = {a} // {n}", lambda x, n: x // n),
    ("takes the larger of it and {n}", "{a} = max({a}, {n})", lambda x, n: max(x, n)),
    ("takes the smaller of it and {n}", "{a} = min({a}, {n})", lambda x, n: min(x, n)),
    ("squares it", "{a} = {a} * {a}", lambda x, n: x * x),
    ("negates it", "{a} = -{a}", lambda x, n: -x),
    ("takes its absolute value", "{a} = abs({a})", lambda x, n: abs(x)),
]


def make_problem(rng: random.Random, level: int) -> Problem:
    fname, arg = rng.choice(FUNCTION_NAMES), rng.choice(ARG_NAMES)
    chosen = [(rng.choice(OPERATIONS), rng.randint(2, 9)) for _ in range(level)]
    words = [desc.format(n=n) for (desc, _, _), n in chosen]
    steps = ", then ".join(words)
    prompt = f"Write a Python function {fname}({arg}) that {steps}."
    body = "".join(f"    {code.format(a=arg, n=n)}\n" for (_, code, _), n in chosen)
    solution = f"```python\ndef {fname}({arg}):\n{body}    return {arg}\n```"

    def reference(x: int) -> int:
        for (_, _, fn), n in chosen:
            x = fn(x, n)
        return x

    tests = [{"args": [x], "expected": reference(x)} for x in TEST_INPUTS]
    return Problem(id="", domain="code", prompt=prompt, tests=tests, entry_point=fname,
                   solution=solution, meta={"level": level})
