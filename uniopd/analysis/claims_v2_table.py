"""Study v2's claims table (claims_v2.md) and the same rows as JSON (claims_v2.json), from
claims_v2.py's rows: per claim and domain the effect with its 95 % interval, the pairs of those
planned, the Holm-adjusted p-values of the three readings, the power at Δ and the verdict; then the
explanatory flaw-0 rows and the reading rules.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from uniopd.analysis import inference as inf
from uniopd.analysis.claims_v2 import NOT_RUN, ORDER_AFTER_MIN

RULES = [
    "Differences are paired by seed, on the seeds all their cells ran; accuracy in points "
    "(final held-out avg@4, per domain), C5 in log2 of the ratio of steps to teacher level "
    "(math 0.96, code 0.65; never reached: 2 × the budget).",
    "Each difference: the one-sided paired t-test in H1's direction (mean > 0; C5: > 1, half the "
    "steps), the opposite one-sided test, and TOST within ±Δ (C1 and C4 2 points, C2 and C3 1; "
    "C5 none). A claim with several differences takes the largest p for holds and equivalent and "
    "the smallest for reversed (intersection–union).",
    "Holm across the 10 rows (5 claims × math and code) at family-wise α 0.05, separately for "
    "each reading (C5 has no equivalence reading: that family has 8).",
    f"holds: H1 rejects (C4: and order/consistency_after ≥ {ORDER_AFTER_MIN:g} in the f0.6 "
    "shift-only runs); reversed: the opposite test rejects (C5: the steps' ratio is under 2); "
    "equivalent: TOST rejects; else unresolved.",
    "Power: the one-sided paired t-test's at a true difference Δ with the observed σ at α/10, now "
    "and at the planned seeds; 'to resolve': the seeds for 80 % power at Δ (seeds_needed).",
    "The two-domain mean and the flaw-0 rows (each cell minus OPD) are reported, never tested.",
]


def _num(x: float, unit: str) -> str:
    if not isinstance(x, float) or not math.isfinite(x):
        return "—"
    return f"{x:+.2f}" if unit == "log2 steps" else f"{x:+.1f}"


def _p(x) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _effects(row: dict, labelled: bool = True) -> str:
    parts = []
    for d in row["differences"]:
        interval = f"[{_num(d['ci_low'], row['unit'])}, {_num(d['ci_high'], row['unit'])}]"
        label = f"{d['label']} " if labelled else ""
        parts.append(f"{label}{_num(d['mean'], row['unit'])} {interval} (n {d['n']})")
    return "; ".join(parts) or "—"


def _power(row: dict) -> str:
    now, plan = row.get("power_now", math.nan), row.get("power_planned", math.nan)
    return "—" if not math.isfinite(plan) else f"{now:.2f} / {plan:.2f}"


def _verdict(row: dict) -> str:
    v = row["verdict"]
    if v == NOT_RUN:
        return f"{NOT_RUN} ({', '.join(row['missing'])})"
    if v in (inf.HOLDS, inf.FAILS, inf.EQUIVALENT):
        v = f"**{v}**"
    if row.get("seeds_to_resolve"):
        v += f"; {row['seeds_to_resolve']} seeds would resolve it"
    if row.get("order_after") is not None and row["domain"] != "mean":
        v += f"; order after {row['order_after']:.3f}"
    if row.get("reached"):
        at = ", ".join(f"{c.split('/')[-1]} {k}" for c, k in row["reached"].items())
        v += f"; reached teacher level: {at}"
        if all(k.startswith("0/") for k in row["reached"].values()):
            # every pair is 2 x budget on both sides: a ratio of 1 by the rule, not a measurement
            v += " (no run reached it: the verdict comes from the censoring rule alone)"
    return v + (f" ({row['note']})" if row.get("note") else "")


def claims_v2_markdown(rows: list[dict]) -> str:
    lines = [
        "| claim | domain | effect [95 % CI] | pairs / planned | p holds / reversed / "
        "equivalent (Holm) | power at Δ now / plan | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["kind"] == "claim"):
        p = " / ".join(_p(r.get(f"holm_{k}")) for k in ("better", "worse", "equivalent"))
        pairs = f"{r['n']} / {r.get('planned', '—')}"
        lines.append(
            f"| {r['claim']} {r['text']} | {r['domain']} | {_effects(r)} | {pairs} | "
            f"{p if r['domain'] != 'mean' else '—'} | {_power(r)} | {_verdict(r)} |"
        )
    lines += ["", "Explanatory (flaw 0, each cell minus OPD; outside the Holm family):", ""]
    lines += ["| cells | domain | effect [95 % CI] | pairs / planned |", "|---|---|---|---|"]
    for r in (r for r in rows if r["kind"] == "explanatory"):
        pairs = f"{r['n']} / {r.get('planned', '—')}"
        effect = _effects(r, labelled=False) if r["verdict"] != NOT_RUN else _verdict(r)
        lines.append(f"| {r['claim']} | {r['domain']} | {effect} | {pairs} |")
    lines += ["", "Reading rules (pre-registered in docs/study.md):", ""]
    lines += [f"- {rule}" for rule in RULES]
    return "\n".join(lines) + "\n"


def _plain(x):
    """Strict JSON: NaN (a test under 2 pairs, a power without σ) as null."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "item"):  # a numpy scalar
        x = x.item()
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write_claims_v2(rows: list[dict], out: Path, under: str) -> list[str]:
    """claims_v2.md (with what it rests on in a line under it) and claims_v2.json into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims_v2.md").write_text(f"{claims_v2_markdown(rows)}\n{under}\n")
    (out / "claims_v2.json").write_text(json.dumps(_plain(rows), indent=1) + "\n")
    return ["claims_v2.md", "claims_v2.json"]
