"""What the teacher side of Uni-OPD logs (METHOD 4.3): order consistency of the distillation returns
before and after calibration, and the advantage pairs behind the paper's order-consistency heatmap.
The calibrations themselves are strategies (uniopd/strategies); the maths is in uniopd.algorithms."""

from __future__ import annotations

import torch

from uniopd.algorithms import distillation_returns, order_consistency
from uniopd.seeds import PAIRS_OFFSET, step_seed


def order_metrics(
    tag: str,
    opd_adv: torch.Tensor,
    mask: torch.Tensor,
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
) -> dict:
    oc = order_consistency(distillation_returns(opd_adv, mask), rewards.float(), group_ids)
    return {
        f"order/consistency_{tag}": oc.fraction,
        f"order/mean_gap_{tag}": oc.mean_gap,
        "order/pairs": oc.pairs,
    }


def advantage_pairs(
    step: int,
    k: int,
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    mask: torch.Tensor,
    before: torch.Tensor,
    after: torch.Tensor,
    response_ids: torch.Tensor,
    tokenizer,
    rows: list,
    seed: int,
) -> list[dict]:
    """Up to k (correct, incorrect) pairs, one per mixed group, drawn at random (seeded per step)."""
    g = torch.Generator().manual_seed(step_seed(seed, step, PAIRS_OFFSET))
    groups = group_ids.unique()
    records = []
    for gid in groups[torch.randperm(len(groups), generator=g)].tolist():
        in_g = group_ids == gid
        c = (in_g & (rewards == 1.0)).nonzero().flatten()
        w = (in_g & (rewards == 0.0)).nonzero().flatten()
        if len(c) == 0 or len(w) == 0:
            continue
        pair = {
            "step": step,
            "group": gid,
            "prompt_id": rows[int(c[0])].id,
            "domain": rows[int(c[0])].domain,
        }
        for side, idx in (("correct", c), ("incorrect", w)):
            i = int(idx[torch.randint(len(idx), (1,), generator=g)])
            t = int(mask[i].sum())
            pair[side] = {
                "rollout": i,
                "tokens": [tokenizer.decode([tid]) for tid in response_ids[i, :t].tolist()],
                "before": [round(x, 4) for x in before[i, :t].tolist()],
                "after": [round(x, 4) for x in after[i, :t].tolist()],
            }
        records.append(pair)
        if len(records) == k:
            break
    return records
