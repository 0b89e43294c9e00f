"""The unit a batch-level rule works on: each prompt group (scope "group") or the whole batch."""

from __future__ import annotations

from typing import Literal, get_args

import torch

Scope = Literal["group", "global"]  # the experiment schema accepts exactly these
SCOPES = get_args(Scope)


def unit_index(group_ids: torch.Tensor, scope: str) -> tuple[torch.Tensor, int]:
    """(unit index 0..U-1 per rollout `[N]`, U) for `scope`."""
    if scope == "group":
        _, inverse = torch.unique(group_ids, return_inverse=True)
        return inverse, (int(inverse.max()) + 1 if inverse.numel() else 0)
    if scope == "global":
        return torch.zeros_like(group_ids, dtype=torch.long), (1 if group_ids.numel() else 0)
    raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
