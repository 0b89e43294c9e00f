"""Offline difficulty-aware balancing (METHOD 3.1, a reconstruction of the paper's rule).

Difficulty is the initial student's pass rate p = c/n on a prompt. The paper finds the histogram
mirrored-J or U-shaped and that dropping either extreme hurts, so every prompt is kept once and
the mid-difficulty bins are upsampled towards a reference bin size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch

# The names the experiment schema accepts are these very types (uniopd/config/uni_opd.py).
OfflineMode = Literal["none", "balance", "drop_all_correct", "drop_all_wrong"]
BinKind = Literal["count", "width"]
Reference = Literal["max", "extremes", "mean"]
MODES, BINS, REFERENCES = get_args(OfflineMode), get_args(BinKind), get_args(Reference)


def difficulty_bins(
    pass_counts: Sequence[int], n_samples: int, bins: str = "count", num_bins: int = 4
) -> list[int]:
    """Bin of each prompt. bins="count": the pass count c itself (n+1 bins, 0..n).
    bins="width": p = 0 is bin 0, p = 1 is bin num_bins + 1, and 0 < p < 1 falls into num_bins
    equal-width bins 1..num_bins, so the two extremes stay bins of their own (reconstruction)."""
    if bins == "count":
        return [int(c) for c in pass_counts]
    if bins != "width":
        raise ValueError(f"bins must be 'count' or 'width', got {bins!r}")
    out = []
    for c in pass_counts:
        p = c / n_samples
        out.append(
            0
            if c == 0
            else num_bins + 1
            if c == n_samples
            else 1 + min(num_bins - 1, math.floor(p * num_bins))
        )
    return out


def difficulty_balance(
    pass_counts: Sequence[int],
    n_samples: int,
    ratio: float = 1.0,
    mode: str = "balance",
    *,
    bins: str = "count",
    num_bins: int = 4,
    mid_low: float = 0.0,
    mid_high: float = 1.0,
    reference: str = "max",
    max_repeats: int = 8,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Indices (with repeats) of the balanced training set, shuffled. Call once per domain.

    mode "balance": for each non-empty mid bin b (its prompts have mid_low < p < mid_high) the
    target is n*_b = max(n_b, ceil(ratio * n_ref)), n_ref = the largest bin ("max"), the mean of
    the two extreme bins ("extremes") or the mean over non-empty bins ("mean"); the bin is repeated
    whole floor(n*_b / n_b) times and the rest drawn without replacement, no prompt more than
    `max_repeats` times. "drop_all_correct" / "drop_all_wrong" are the filtering baselines (p = 1 /
    p = 0 removed); "none" keeps every prompt once.
    """
    counts = [int(c) for c in pass_counts]
    if any(c < 0 or c > n_samples for c in counts):
        raise ValueError(f"pass counts must lie in 0..{n_samples}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if mode == "none":
        keep = list(range(len(counts)))
    elif mode == "drop_all_correct":
        keep = [i for i, c in enumerate(counts) if c < n_samples]
    elif mode == "drop_all_wrong":
        keep = [i for i, c in enumerate(counts) if c > 0]
    else:
        keep = _upsample_mid(
            counts,
            n_samples,
            ratio,
            difficulty_bins(counts, n_samples, bins, num_bins),
            mid_low,
            mid_high,
            reference,
            max_repeats,
            generator,
        )
    order = torch.randperm(len(keep), generator=generator).tolist()
    return [keep[i] for i in order]


def _upsample_mid(counts, n, ratio, bin_of, mid_low, mid_high, reference, max_repeats, generator):
    members: dict[int, list[int]] = {}
    for i, b in enumerate(bin_of):
        members.setdefault(b, []).append(i)
    sizes = {b: len(m) for b, m in members.items()}
    if reference == "max":
        n_ref: float = max(sizes.values(), default=0)
    elif reference == "extremes":  # mean size of the all-wrong and the all-correct bins
        n_ref = (sum(c == 0 for c in counts) + sum(c == n for c in counts)) / 2
    elif reference == "mean":
        n_ref = sum(sizes.values()) / len(sizes) if sizes else 0
    else:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    out = list(range(len(counts)))  # every prompt once, the extremes included
    for _, idx in sorted(members.items()):
        if not all(mid_low < counts[i] / n < mid_high for i in idx):
            continue
        target = max(len(idx), math.ceil(ratio * n_ref))
        whole = min(target // len(idx), max_repeats)
        out += idx * (whole - 1)  # the first copy is already in
        rest = target - whole * len(idx)
        if whole < max_repeats and rest > 0:
            pick = torch.randperm(len(idx), generator=generator)[:rest].tolist()
            out += [idx[j] for j in pick]
    return out
