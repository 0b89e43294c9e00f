"""The teacher-side step of Uni-OPD, wired to an experiment's config: margin calibration of the OPD
advantages, the order-consistency metrics before and after it, and the advantage pairs behind the
paper's order-consistency heatmap (METHOD 4, 4.3). The maths lives in `uniopd.algorithms`."""

from __future__ import annotations

import torch

from uniopd.algorithms import distillation_returns, margin_mask, margin_shift, order_consistency


def calibrate(opd_adv: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
              group_ids: torch.Tensor, keep: torch.Tensor, cfg) -> tuple[torch.Tensor, dict]:
    """Margin shift or greedy mask on the whole batch's OPD advantages `[N, T]`; (advantages, metrics)."""
    cal = cfg.calibration
    correct = rewards.float().clone()
    if cfg.balance.online.enabled and not cfg.balance.online.in_margin_stats:
        correct[~keep] = float("nan")  # balanced-out rollouts leave the statistics
    if cal.margin_shift:
        out, st = margin_shift(opd_adv, mask, correct, group_ids, cal.delta, cal.mode, cal.direction, cal.scope)
        extra = {"calibration/mean_shift": st.mean_shift}
    else:
        out, dropped, st = margin_mask(opd_adv, mask, correct, group_ids, cal.delta, cal.mode, cal.scope,
                                       cal.min_retain_ratio)
        extra = {"calibration/dropped_rollouts": int(dropped.sum())}
    return out, {"calibration/mixed_units": st.mixed,
                 "calibration/calibrated_frac": st.calibrated / st.mixed if st.mixed else None, **extra}


def order_metrics(tag: str, opd_adv: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
                  group_ids: torch.Tensor) -> dict:
    oc = order_consistency(distillation_returns(opd_adv, mask), rewards.float(), group_ids)
    return {f"order/consistency_{tag}": oc.fraction, f"order/mean_gap_{tag}": oc.mean_gap,
            "order/pairs": oc.pairs}


def advantage_pairs(step: int, k: int, rewards: torch.Tensor, group_ids: torch.Tensor,
                    mask: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
                    response_ids: torch.Tensor, tokenizer, rows: list, seed: int) -> list[dict]:
    """Up to k (correct, incorrect) pairs, one per mixed group, drawn at random (seeded per step)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
    groups = group_ids.unique()
    records = []
    for gid in groups[torch.randperm(len(groups), generator=g)].tolist():
        in_g = group_ids == gid
        c = (in_g & (rewards == 1.0)).nonzero().flatten()
        w = (in_g & (rewards == 0.0)).nonzero().flatten()
        if len(c) == 0 or len(w) == 0:
            continue
        pair = {"step": step, "group": gid, "prompt_id": rows[int(c[0])].id, "domain": rows[int(c[0])].domain}
        for side, idx in (("correct", c), ("incorrect", w)):
            i = int(idx[torch.randint(len(idx), (1,), generator=g)])
            t = int(mask[i].sum())
            pair[side] = {"rollout": i,
                          "tokens": [tokenizer.decode([tid]) for tid in response_ids[i, :t].tolist()],
                          "before": [round(x, 4) for x in before[i, :t].tolist()],
                          "after": [round(x, 4) for x in after[i, :t].tolist()]}
        records.append(pair)
        if len(records) == k:
            break
    return records
