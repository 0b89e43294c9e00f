"""Synthetic `code` domain: short Python functions described in words, graded by hidden tests.

Each problem chains `level` (1..4) operations on an integer argument; the response must define
`f`, and the verifier runs it on hidden inputs in the sandbox. Difficulty grows with the chain
length for the same reason as in the math domain: every line is one more chance to go wrong.

Each phrase maps to one fixed line of code (constants are part of the phrase), so what a model
must learn is the translation and the order of the steps. Measured on this project's tiny models:
copying free-form constants and function names from the prompt took far longer to learn than a
few minutes of CPU allow, while fixed phrases are learnt quickly.
"""

from __future__ import annotations

import random
from dataclasses import replace

from uniopd.tasks.problem import Problem

LEVELS = (1, 2, 3, 4)
ARG_NAMES = ["x", "n", "v", "a"]
TEST_INPUTS = [-7, -2, 0, 1, 3, 8, 13]

# (description, code line with {a} for the argument, the same operation in Python)
OPERATIONS = [
    ("adds one", "{a} = {a} + 1", lambda x: x + 1),
    ("adds two", "{a} = {a} + 2", lambda x: x + 2),
    ("adds ten", "{a} = {a} + 10", lambda x: x + 10),
    ("subtracts one", "{a} = {a} - 1", lambda x: x - 1),
    ("subtracts three", "{a} = {a} - 3", lambda x: x - 3),
    ("doubles it", "{a} = {a} * 2", lambda x: x * 2),
    ("triples it", "{a} = {a} * 3", lambda x: x * 3),
    ("halves it rounding down", "{a} = {a} // 2", lambda x: x // 2),
    ("takes it modulo five", "{a} = {a} % 5", lambda x: x % 5),
    ("squares it", "{a} = {a} * {a}", lambda x: x * x),
    ("negates it", "{a} = -{a}", lambda x: -x),
    ("takes its absolute value", "{a} = abs({a})", lambda x: abs(x)),
    ("keeps it at least zero", "{a} = max({a}, 0)", lambda x: max(x, 0)),
    ("caps it at nine", "{a} = min({a}, 9)", lambda x: min(x, 9)),
]


def make_problem(rng: random.Random, level: int) -> Problem:
    arg = rng.choice(ARG_NAMES)
    chosen = [rng.choice(OPERATIONS) for _ in range(level)]
    steps = ", then ".join(desc for desc, _, _ in chosen)
    prompt = f"Write a Python function f({arg}) that {steps}."
    body = "".join(f"    {code.format(a=arg)}\n" for _, code, _ in chosen)
    solution = f"```python\ndef f({arg}):\n{body}    return {arg}\n```"

    def reference(x: int) -> int:
        for _, _, fn in chosen:
            x = fn(x)
        return x

    tests = [{"args": [x], "expected": reference(x)} for x in TEST_INPUTS]
    return Problem(
        id="",
        domain="code",
        prompt=prompt,
        tests=tests,
        entry_point="f",
        solution=solution,
        meta={"level": level},
    )


def early_stop_solution(problem: Problem) -> str:
    """The reference solution one step short: the last operation's line is left out (see
    arith.early_stop_solution, the same habit in the math domain)."""
    lines = problem.solution.split("\n")
    body = [i for i, line in enumerate(lines) if line.startswith("    ") and "return" not in line]
    del lines[body[-1]]
    return "\n".join(lines)


# --- world v6: chains with a latent difficulty (see arith.make_chain) ---------------------------
# The difficulty class is the argument's name, which every line of the solution repeats. The
# misread line of each operation the soft-skill student lacks differs from the right one at one
# token (the student samples the right token rarely rather than never; world/recipe.py).
CLASS_ARG_NAMES = ["x", "n", "v", "a", "b", "c", "k", "m", "p", "s", "t", "z"]
DIFFICULTY_CLASSES = len(CLASS_ARG_NAMES)
MISREAD_LINES = {
    "squares it": "{a} = {a} * 2",
    "negates it": "{a} = {a} - 1",
    "takes its absolute value": "{a} = max({a}, 0)",
    "caps it at nine": "{a} = max({a}, 9)",
}


def make_chain(rng: random.Random, level: int) -> Problem:
    """A v6 problem of `level` chained operations; its plan (operation indices) in `meta`."""
    cls = rng.randrange(DIFFICULTY_CLASSES)
    arg = CLASS_ARG_NAMES[cls]
    ops = [rng.randrange(len(OPERATIONS)) for _ in range(level)]
    steps = ", then ".join(OPERATIONS[i][0] for i in ops)

    def reference(x: int) -> int:
        for i in ops:
            x = OPERATIONS[i][2](x)
        return x

    problem = Problem(
        id="",
        domain="code",
        prompt=f"Write a Python function f({arg}) that {steps}.",
        tests=[{"args": [x], "expected": reference(x)} for x in TEST_INPUTS],
        entry_point="f",
        meta={"level": level, "difficulty_class": cls, "arg": arg, "ops": ops},
    )
    return replace(problem, solution=chain_solution(problem))


def chain_solution(problem: Problem, done: int | None = None, misread=frozenset()) -> str:
    """The function after its first `done` operations (all by default), the operations at the
    indices in `misread` written as their MISREAD_LINES."""
    arg, body = problem.meta["arg"], []
    for i, op in enumerate(problem.meta["ops"][:done]):
        desc, line, _ = OPERATIONS[op]
        body.append("    " + (MISREAD_LINES[desc] if i in misread else line).format(a=arg) + "\n")
    return f"```python\ndef f({arg}):\n{''.join(body)}    return {arg}\n```"
