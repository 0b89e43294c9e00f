"""The difficulty-skew dial of the tiny world (world.difficulty_skew): a training list whose share of
extreme prompts (the initial student always or never solves them) is set, the rest sometimes
solved. Uni-OPD's balancing claims are about skewed lists (the paper's mirrored-J and U-shaped
histograms); this makes the skew a setting rather than an accident of the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def difficulty_skew(
    pass_counts: Sequence[int],
    n_samples: int,
    skew: float,
    size: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Indices of a list with round(skew * M) extreme prompts (pass count 0 or n) and the rest
    mid-difficulty ones, drawn uniformly without replacement from each pool (so all-correct and
    all-wrong prompts keep their natural proportion among the extremes). M = `size`, or the
    largest list the pools allow at this skew. Sorted; ValueError when the pools cannot make it.
    """
    if not 0 < skew < 1:
        raise ValueError(f"skew must be in (0, 1), got {skew}")
    extreme = [i for i, c in enumerate(pass_counts) if c in (0, n_samples)]
    mid = [i for i, c in enumerate(pass_counts) if 0 < c < n_samples]
    largest = math.floor(min(len(extreme) / skew, len(mid) / (1 - skew)) + 1e-9)
    m = largest if size is None else size
    n_extreme = round(skew * m)
    n_mid = m - n_extreme
    if n_extreme > len(extreme) or n_mid > len(mid) or n_extreme < 1 or n_mid < 1:
        raise ValueError(
            f"a list of {m} prompts with {skew:.0%} extremes needs {n_extreme} always- or "
            f"never-solved and {n_mid} sometimes-solved prompts; the initial student leaves "
            f"{len(extreme)} and {len(mid)} (largest list at this skew: {largest})"
        )

    def draw(pool: list[int], k: int) -> list[int]:
        order = torch.randperm(len(pool), generator=generator)[:k]
        return [pool[int(j)] for j in order]

    return sorted(draw(extreme, n_extreme) + draw(mid, n_mid))
