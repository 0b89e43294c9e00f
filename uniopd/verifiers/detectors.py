"""SENTINEL's object check (arXiv 2507.12455; docs/method.md 9.3) on the describe task: two
open-vocabulary detectors, simulated, and their agreement rule.

SENTINEL checks each object a description mentions with two open-vocabulary detectors and trusts
only what they agree on. Here a detector reads the scene's ground truth (`meta["objects"]` of a
describe problem) through its own error rates: it misses a present object with probability
`miss_rate` and sees an absent one with probability `false_rate`. Its answer is a fixed function
of (detector, scene, object), drawn from a hash: the same picture always gets the same answer, as
a real detector's weights give it, and two detectors err independently of each other.

The agreement rule (our reading of the paper, docs/method.md 9.3): an object both detectors
confirm is real, one neither confirms is hallucinated, a disagreement is uncertain (kept out of
pairs). CHAIR (uniopd/verifiers/describe.py) is computed against the ground truth, never these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["real", "hallucinated", "uncertain"]


@dataclass(frozen=True)
class Detector:
    name: str
    miss_rate: float  # P(not seen | present)
    false_rate: float  # P(seen | absent)

    def sees(self, scene: str, counts: dict[str, int], obj: str) -> bool:
        """Whether this detector reports `obj` in `scene` (whose true counts are `counts`)."""
        u = _uniform(f"{self.name}|{scene}|{obj}")
        return u >= self.miss_rate if counts.get(obj, 0) > 0 else u < self.false_rate


# Two detectors of different error rates, standing in for SENTINEL's Grounding DINO and
# YOLO-World: the first the stronger. With these, an absent object is called hallucinated 86 % of
# the time and real 0.5 %; a present one real 76 % and hallucinated 1 % (the rest uncertain).
DETECTORS = (
    Detector("detector-a", miss_rate=0.05, false_rate=0.05),
    Detector("detector-b", miss_rate=0.20, false_rate=0.10),
)


def agreement(first: bool, second: bool) -> Verdict:
    """Both confirm: real; neither: hallucinated; they disagree: uncertain."""
    if first and second:
        return "real"
    if not first and not second:
        return "hallucinated"
    return "uncertain"


def detector_verdicts(
    scene: str, counts: dict[str, int], detectors: tuple[Detector, Detector] = DETECTORS
) -> dict[str, Verdict]:
    """Each object's verdict under the agreement rule of the two detectors."""
    a, b = detectors
    return {o: agreement(a.sees(scene, counts, o), b.sees(scene, counts, o)) for o in counts}


def truth_verdicts(counts: dict[str, int]) -> dict[str, Verdict]:
    """The ground truth as verdicts: present objects real, absent ones hallucinated."""
    return {o: "real" if k > 0 else "hallucinated" for o, k in counts.items()}


def _uniform(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12
