"""The describe task's verifier (uniopd/tasks/describe.py): which objects a description mentions,
sentence by sentence, and CHAIR against the scene's ground truth.

A mention is a colour named with a positive count ("There are 3 red squares.", "a red square");
a colour said to be absent ("0 red squares", "no red squares") is no mention. Each response's
mentioned objects are distinct (a colour named twice is one mention), as CHAIR counts them.

    CHAIR_i = hallucinated mentions / all mentions        (pooled over every response)
    CHAIR_s = responses with a hallucinated mention / all responses

(Rohrbach et al. 2018; SENTINEL's tables report both.) Also `recall`, the share of the pictures'
objects that were mentioned (a description can lower CHAIR by saying less), and
`count_accuracy`, the share of mentioned real objects whose count is right.

**choice** (the outcome, `grade`): 1 when the description mentions no absent object and every
object of the picture, else 0. Hallucination-free alone would reward saying nothing, so the
outcome asks for the whole picture too; the counts are not graded (CHAIR is about existence; they
are reported as `count_accuracy`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from uniopd.tasks.problem import Problem
from uniopd.tasks.shapes import COLORS
from uniopd.verifiers import VERIFIERS
from uniopd.verifiers.detectors import Verdict

SentenceClass = Literal["faithful", "hallucinated", "uncertain"]

_SENTENCE = re.compile(r"[^.!?]*[.!?]|[^.!?]+$")
_MENTION = re.compile(r"\b(?:(\d+|no|a|an|one)\s+)?(" + "|".join(COLORS) + r")\b", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    """The response's sentences, in order, each with its closing mark (a last one may lack it)."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def mentions(text: str) -> dict[str, int | None]:
    """The objects (colours) `text` says are there, each with the first count it gives (None when
    it gives none)."""
    out: dict[str, int | None] = {}
    for number, color in _MENTION.findall(text):
        word, color = number.lower(), color.lower()
        count = (
            None
            if not word
            else 1
            if word in ("a", "an", "one")
            else 0
            if word == "no"
            else int(word)
        )
        if count == 0 or color in out:
            continue
        out[color] = count
    return out


def classify(sentence: str, verdicts: dict[str, Verdict]) -> SentenceClass:
    """hallucinated: it mentions an object the verdicts call hallucinated; uncertain: else one
    they call uncertain; faithful otherwise (a sentence that mentions nothing included)."""
    said = [verdicts.get(o, "hallucinated") for o in mentions(sentence)]
    if "hallucinated" in said:
        return "hallucinated"
    return "uncertain" if "uncertain" in said else "faithful"


def chair(problems: Sequence[Problem], completions: Sequence[str]) -> dict[str, float]:
    """CHAIR_i, CHAIR_s, recall and count accuracy of `completions` against each problem's
    ground truth (`meta["objects"]`)."""
    said_total = hallucinated = with_hallucination = present_total = recalled = 0
    counted = counted_right = 0
    for p, text in zip(problems, completions, strict=True):
        truth = p.meta["objects"]
        said = mentions(text or "")
        wrong = [o for o in said if truth.get(o, 0) == 0]
        right = [o for o in said if truth.get(o, 0) > 0]
        said_total += len(said)
        hallucinated += len(wrong)
        with_hallucination += bool(wrong)
        present_total += sum(k > 0 for k in truth.values())
        recalled += len(right)
        claims = [o for o in right if said[o] is not None]
        counted += len(claims)
        counted_right += sum(said[o] == truth[o] for o in claims)
    n = len(completions)
    return {
        "chair_i": hallucinated / said_total if said_total else 0.0,
        "chair_s": with_hallucination / n if n else 0.0,
        "recall": recalled / present_total if present_total else 0.0,
        "count_accuracy": counted_right / counted if counted else 0.0,
        "mentions_per_response": said_total / n if n else 0.0,
    }


@VERIFIERS.register("describe")
class DescribeVerifier:
    """The tiny world's describe task (name the objects of a picture): 1 when a description
    mentions every object of the picture and no other; CHAIR_i / CHAIR_s in evaluations."""

    name = "describe"

    def grade(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for p, text in zip(problems, completions, strict=True):
            truth, said = p.meta["objects"], mentions(text or "")
            present = {o for o, k in truth.items() if k > 0}
            out.append(1.0 if set(said) == present else 0.0)
        return out

    def eval_metrics(self, problems: Sequence[Problem], completions: Sequence[str]) -> dict:
        """What an evaluation reports beside the accuracy (eval/describe/chair_i, ...)."""
        return chair(problems, completions)
