"""The one record every dataset is turned into, whatever file or generator it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A prompt with what its domain verifier needs to grade a response.

    math rows carry `answer` (graded with math-verify against the last \\boxed{} of a response);
    code rows carry `tests` and `entry_point` (graded by running the tests in a sandbox).
    `tests` is either a list of {"args": [...], "expected": value} cases, or Python source that
    defines `check(candidate)` (the HumanEval convention) or plain asserts on `entry_point`.
    A row given as a chat keeps it in `messages`, which the model sees instead of `prompt`.
    A row with `images` is for a multimodal student; its prompt may place them with `<image>`.
    """

    id: str
    domain: str
    prompt: str
    answer: str | None = None
    tests: Any = None
    entry_point: str | None = None
    solution: str | None = None  # a reference response, used by supervised warm starts only
    meta: dict = field(default_factory=dict)  # e.g. {"level": 3} for synthetic difficulty
    # the prompt as a chat (a list of {"role", "content"}) when the data gives one; `prompt` is
    # then its last user turn, the question that logs, templates and difficulty keys use
    messages: list | None = None
    # the row's images (uniopd.data.images): absolute paths or encoded bytes, checked at load
    images: tuple = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Problem:
        return cls(**row)
