"""What the teacher side of Uni-OPD logs (METHOD 4.3): order consistency of the distillation returns
before and after calibration, and the advantage pairs behind the paper's order-consistency heatmap.
The calibrations themselves are strategies (uniopd/strategies); the maths is in uniopd.algorithms."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from uniopd.algorithms import distillation_returns, order_consistency
from uniopd.seeds import PAIRS_OFFSET, step_seed

if TYPE_CHECKING:
    from uniopd.loop.advantages import Advantages


def order_metrics(
    tag: str,
    opd_adv: torch.Tensor,
    mask: torch.Tensor,
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    scored: torch.Tensor | None = None,
) -> dict:
    """METHOD 4.3 for one side of calibration (`tag`: before / after). Only the rollouts in
    `scored` [N] bool (default: all) are compared: the caller leaves out those with no return to
    compare (no finite teacher score, an empty response, dropped by the greedy mask), since a
    zeroed advantage is not a return of 0."""
    correct = rewards.float()
    if scored is not None:
        correct = correct.masked_fill(~scored.to(correct.device), float("nan"))
    oc = order_consistency(distillation_returns(opd_adv, mask), correct, group_ids)
    return {
        f"order/consistency_{tag}": oc.fraction,
        f"order/group_consistency_{tag}": oc.group_fraction,
        f"order/mean_gap_{tag}": oc.mean_gap,
        f"order/pairs_{tag}": oc.pairs,
    }


def order_report(adv: Advantages, rewards_N: torch.Tensor, group_ids_N: torch.Tensor) -> dict:
    """METHOD 4.3: order consistency of the distillation returns before and after calibration,
    and the calibration's own figures; {} for a method without a distillation advantage.

    Only rollouts with a return to compare are scored (`adv.scored_N`); after calibration also
    without those the greedy mask dropped: a zeroed advantage is not a return of 0."""
    raw, cal, dmask = adv.distill_raw_N_T, adv.distill_cal_N_T, adv.distill_mask_N_T
    if raw is None or cal is None or dmask is None:
        return {}
    r, g = rewards_N.to(raw.device), group_ids_N.to(raw.device)
    scored = adv.scored_N if adv.scored_N is not None else dmask.sum(-1) > 0
    out = order_metrics("before", raw, dmask, r, g, scored)
    if adv.calibration:
        kept = scored if adv.dropped_N is None else scored & ~adv.dropped_N.to(scored.device)
        out.update(order_metrics("after", cal, dmask, r, g, kept))
        out.update(adv.calibration)
    return out


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
    """Up to k (correct, incorrect) pairs, one per mixed group, drawn at random (seeded per step).
    `rewards` NaN: the rollout is in no pair (the caller's rows with no return to compare)."""
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
