"""Math verifier: the last \\boxed{} of a response, checked against `problem.answer`
with math-verify.

Scores: 1.0 equivalent, 0.0 not (including no box at all), None when math-verify itself raised or
timed out (the caller decides whether to skip or zero those).

Why we cut out the last box ourselves before handing it to math-verify: on a whole response,
math-verify's extraction falls back to non-boxed anchors ("answer: $5$", "final answer is ...")
when the box is empty or unparseable, and reads "\\boxed{5}, \\boxed{6}" as the set {5, 6}.
Passing it exactly one box makes the rule "graded on the last box, nothing else" hold;
math-verify still does all the LaTeX normalisation and the equivalence check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache

from uniopd.tasks.problem import Problem
from uniopd.verifiers import VERIFIERS

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _boxed_only() -> list:
    """Boxed content is the only place an answer may come from; plain-LaTeX fallback is off.
    math-verify (sympy: half a second) loads at the first grade, not when `uniopd list` names
    this verifier."""
    from math_verify import LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]


def last_boxed(text: str) -> str | None:
    """The last complete `\\boxed{...}` (or `\\fbox{...}`) of `text`, braces balanced, as
    `\\boxed{...}`; None if there is none.

    A box that never closes (a response cut at max tokens) counts as absent.
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_brace = text.find("{", start)
    if open_brace < 0 or text[start:open_brace].strip() not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return "\\boxed" + text[open_brace : i + 1]
    return None


@VERIFIERS.register("math")
class MathVerifier:
    """The last \\boxed{} of a response, checked against `problem.answer` with math-verify."""

    name = "math"

    def __init__(self, timeout_s: int = 3):
        # math-verify's timeouts are signal.alarm based: whole seconds, main thread only.
        self.timeout_s = timeout_s
        self._warned_thread = False

    def grade(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[float | None]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        timeout = self._timeout_for_this_thread()
        return [self.grade_one(p.answer, c, timeout) for p, c in zip(problems, completions)]

    def grade_one(self, answer: str | None, completion: str, timeout: int | None) -> float | None:
        from math_verify import parse, verify

        box = last_boxed(completion)
        if box is None:
            return 0.0
        try:
            gold = _parse_gold(answer, timeout)
            if not gold:
                logger.warning("math-verify could not parse the reference answer %r", answer)
                return None
            pred = parse(box, _boxed_only(), parsing_timeout=timeout, raise_on_error=True)
            if not pred:
                return 0.0  # an empty or unreadable box is a wrong answer, not a grader failure
            same = verify(list(gold), pred, timeout_seconds=timeout, raise_on_error=True)
            return 1.0 if same else 0.0
        except BaseException as exc:  # math-verify's TimeoutException derives from BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            logger.warning("math-verify failed on %r: %s: %s", box[:200], type(exc).__name__, exc)
            return None

    def _timeout_for_this_thread(self) -> int | None:
        """math-verify raises ValueError when asked for a timeout off the main thread (its timeouts
        are SIGALRM based), so there we grade without one.

        The price: a pathological answer (10^{10^{10}}) can then block the calling thread.
        """
        if threading.current_thread() is threading.main_thread():
            return self.timeout_s
        if not self._warned_thread:
            logger.warning("MathVerifier off the main thread: math-verify runs without timeouts")
            self._warned_thread = True
        return None


@lru_cache(maxsize=4096)
def _parse_gold(answer: str | None, timeout: int | None) -> tuple:
    """A rollout group shares one reference answer, so parse it once. The gold goes through the same
    boxed pipeline as the prediction so both sides are normalised identically."""
    if answer is None or not str(answer).strip():
        return ()
    from math_verify import parse

    boxed = "\\boxed{" + str(answer) + "}"
    return tuple(parse(boxed, _boxed_only(), parsing_timeout=timeout, raise_on_error=True))


@VERIFIERS.register("visual")
class VisualVerifier(MathVerifier):
    """The tiny world's visual domain (counting squares in a picture): a number in the last
    \\boxed{}, graded as math."""

    name = "visual"
