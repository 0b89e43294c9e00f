"""The pre-registered study's claims table (the dial study, docs/journal.md 2026-11-29) read back from its runs:
one row per claim, with the numbers and the verdict each pre-registered reading rule gives.

    uniopd group experiments/study/order experiments/study/skew ... --seeds 0 1 2
    uniopd figures runs --teacher math=... --teacher code=... --out paper_figures

Accuracies are final held-out accuracies averaged over domains; differences are paired by seed and
"sd" is the sample std over seeds of the paired difference.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from uniopd.analysis.runs import Runs, teacher_accuracy
from uniopd.analysis.study_data import early_order, final_accuracy, study_cells

NEAR_TEACHER = 0.05  # C5: "teacher level" = within 5 points of the teacher's accuracy
NEAR_ONE = (0.75, 1.0, 1.2)  # C3: the ratios "near r = 1"
MARGIN_FLAW = 0.6  # C4's cells run at this teacher_flaw
ORDER_AFTER_MIN = 0.95  # C4: calibration "restores order" when this share of pairs is in order
DEFICITS = {"habit", "skill"}  # C5 is read per deficit kind
HOLDS, FAILS, OPEN = "holds", "does not hold", "not resolvable at this scale"


# ---- the numbers every claim reads


def acc_by_seed(final: pd.DataFrame, runs: pd.Series | list) -> pd.Series:
    """Final accuracy of these runs, indexed by seed."""
    return final[final.run.isin(list(runs))].groupby("seed").acc.mean()


def mean_sd(d: pd.Series) -> tuple[float, float, int]:
    """(mean, sample std, seeds) of a per-seed series; std is NaN under 2 seeds."""
    d = d.dropna()
    return (
        float(d.mean()) if len(d) else float("nan"),
        float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
        len(d),
    )


def all_of(verdicts: list[str]) -> str:
    """Several differences that must all be positive: one that fails fails the claim."""
    return FAILS if FAILS in verdicts else HOLDS if all(v == HOLDS for v in verdicts) else OPEN


def verdict(d: pd.Series) -> str:
    """A paired difference that must be positive: beyond one sd either way, or not resolvable."""
    mean, sd, n = mean_sd(d)
    if n < 2:
        return OPEN
    return HOLDS if mean > sd else FAILS if mean < -sd else OPEN


def _pm(d: pd.Series) -> str:
    mean, sd, n = mean_sd(d)
    if n == 0:
        return "—"
    return f"{mean:+.3f} ± {sd:.3f} ({n} seeds)" if n > 1 else f"{mean:+.3f} (1 seed)"


def _acc(s: pd.Series) -> str:
    mean, sd, n = mean_sd(s)
    return "—" if n == 0 else f"{mean:.3f}" + (f" ± {sd:.3f}" if n > 1 else "") + f" (n={n})"


def _cells(info: pd.DataFrame) -> list[str]:
    return sorted(info.experiment.unique())


# ---- the claims, each a pre-registered reading rule


def _row(claim: str, text: str, cells, numbers: list[str], v: str, rule: str) -> dict:
    return {
        "claim": claim,
        "text": text,
        "cells": list(cells),
        "numbers": "; ".join(numbers) if numbers else "no finished runs of these cells",
        "verdict": v if numbers else OPEN,
        "rule": rule,
    }


def order_gains(runs: Runs, final: pd.DataFrame) -> dict[float, dict]:
    """Per teacher_flaw: Uni-OPD − OPD final accuracy by seed, and the OPD runs' measured order
    consistency (mean over seeds of their first-10-step mean)."""
    info, oc = runs.info, early_order(runs)
    opd, uni = study_cells(info, "study-order-opd"), study_cells(info, "study-order-uniopd")
    out = {}
    for f in sorted(set(opd.teacher_flaw) & set(uni.teacher_flaw)):
        o, u = opd[opd.teacher_flaw == f], uni[uni.teacher_flaw == f]
        gain = (acc_by_seed(final, u.run) - acc_by_seed(final, o.run)).dropna()
        out[float(f)] = {"gain": gain, "oc": float(oc.reindex(o.run).mean())}
    return out


def claim_order(runs: Runs, final: pd.DataFrame) -> dict:
    info = study_cells(runs.info, "study-order-")
    gains = order_gains(runs, final)
    nums = [f"f={f:g}: gain {_pm(g['gain'])}, OC {g['oc']:.3f}" for f, g in gains.items()]
    v = OPEN
    measured = {f: g for f, g in gains.items() if np.isfinite(g["oc"])}
    if len(measured) >= 2:
        lo = min(measured, key=lambda f: measured[f]["oc"])
        hi = max(measured, key=lambda f: measured[f]["oc"])
        d = (measured[lo]["gain"] - measured[hi]["gain"]).dropna()  # paired by seed
        if measured[lo]["oc"] < measured[hi]["oc"]:  # equal everywhere: no "falls" to read
            nums.append(f"gain(lowest OC, f={lo:g}) − gain(highest OC, f={hi:g}) = {_pm(d)}")
            v = verdict(d)
        else:
            nums.append("the flaws' measured order consistency does not differ")
    return _row(
        "C1",
        "Uni-OPD's gain over OPD grows as the teacher's order consistency falls",
        _cells(info),
        nums,
        v,
        "gain(f) = Uni-OPD − OPD final accuracy, paired by seed; lo / hi = the flaw whose OPD runs "
        "measure the lowest / highest order consistency (mean of the first 10 steps); holds if "
        "gain(lo) − gain(hi) > its sd, does not hold if < −sd, else not resolvable",
    )


def claim_skew(runs: Runs, final: pd.DataFrame) -> dict:
    info = study_cells(runs.info, "study-skew-")
    baselines = ("none", "drop_all_correct", "drop_all_wrong")
    nums, v = [], OPEN
    skews = sorted(info.difficulty_skew.dropna().unique()) if len(info) else []
    for s in skews:
        at = info[info.difficulty_skew == s]
        bal = acc_by_seed(final, at[at.offline_mode == "balance"].run)
        ds = {
            m: (bal - acc_by_seed(final, at[at.offline_mode == m].run)).dropna() for m in baselines
        }
        nums.append(f"skew {s:g}: " + ", ".join(f"balance − {m} {_pm(d)}" for m, d in ds.items()))
        if s == skews[-1]:  # the verdict is read at the highest skew
            v = all_of([verdict(d) for d in ds.values()])
    return _row(
        "C2",
        "offline balancing beats no balancing and both filtering baselines",
        _cells(info),
        nums,
        v,
        "d_m = balance − m (m: none, drop_all_correct, drop_all_wrong), paired by seed; at the "
        "highest skew: holds if every d_m > its sd, does not hold if some d_m < −sd, else not "
        "resolvable",
    )


def _ratio_label(r: float | None) -> str:
    return "no control" if r is None else "correct-only (inf)" if np.isinf(r) else f"r={r:g}"


def _ratio_order(item) -> float:
    return -1.0 if item[0] is None else item[0]  # no control first, then r ascending, inf last


def claim_online(runs: Runs, final: pd.DataFrame) -> dict:
    info = study_cells(runs.info, "study-online-")
    acc = {}  # ratio (None: no control, inf: correct-only) -> final accuracy by seed
    for _, row in info.drop_duplicates("experiment").iterrows():
        r = None if pd.isna(row.online_ratio) else float(row.online_ratio)
        acc[r] = acc_by_seed(final, info[info.experiment == row.experiment].run)
    nums = [f"{_ratio_label(r)}: {_acc(a)}" for r, a in sorted(acc.items(), key=_ratio_order)]
    near = [r for r in acc if r is not None and np.isclose(r, NEAR_ONE).any() and len(acc[r])]
    v = OPEN
    if near:
        best = max(near, key=lambda r: acc[r].mean())
        none = pd.Series(dtype=float)
        d_inf = (acc[best] - acc.get(float("inf"), none)).dropna()
        d_none = (acc[best] - acc.get(None, none)).dropna()
        nums.append(
            f"best near 1: r={best:g}; minus correct-only {_pm(d_inf)}; "
            f"minus no control {_pm(d_none)}"
        )
        v = all_of([verdict(d_inf), verdict(d_none)])
    return _row(
        "C3",
        "online balancing near r = 1 beats correct-only and no control",
        _cells(info),
        nums,
        v,
        "b = the r in {0.75, 1.0, 1.2} with the best mean final accuracy; holds if b − (r = inf) "
        "and b − (no control), paired by seed over b's seeds, both exceed their sd; does not hold "
        "if either is < −sd; else not resolvable",
    )


def claim_margin(runs: Runs, final: pd.DataFrame) -> dict:
    info = study_cells(runs.info, "study-margin-")
    if len(info):
        info = info[np.isclose(info.teacher_flaw.astype(float), MARGIN_FLAW)]
    none = acc_by_seed(final, info[info.calibration == "off"].run) if len(info) else None
    m, col = runs.metrics, "order/consistency_after"
    after = (  # per run, over the whole run: has calibration put the pairs in order?
        pd.to_numeric(m[col], errors="coerce").groupby(m.run).mean()
        if col in m
        else pd.Series(dtype=float)
    )
    nums, v = [], OPEN
    for exp in sorted(set(info.experiment) - set(info[info.calibration == "off"].experiment)):
        rows = info[info.experiment == exp]
        d = (acc_by_seed(final, rows.run) - none).dropna()
        oc = float(after.reindex(rows.run).mean()) if len(after) else float("nan")
        nums.append(
            f"{exp.removeprefix('study-margin-')} minus none {_pm(d)}, order after {oc:.3f}"
        )
        if exp == "study-margin-mean-both":
            v = verdict(d)
            if v == HOLDS and not oc >= ORDER_AFTER_MIN:  # it helps, but order is not restored
                v = OPEN
    return _row(
        "C4",
        "margin calibration restores order and helps where the teacher mis-orders",
        _cells(info),
        nums,
        v,
        f"at teacher_flaw {MARGIN_FLAW:g}: d = shift(mean, both) − none, paired by seed; holds if "
        f"d > sd and the shift runs' mean order/consistency_after ≥ {ORDER_AFTER_MIN:g}; does not "
        "hold if d < −sd; else not resolvable",
    )


def steps_to_teacher(runs: Runs, run: str, teachers: dict) -> tuple[float | None, int | None]:
    """(teacher level, first eval step the run's mean accuracy reaches it); level None when a
    domain's teacher accuracy is not given, step None when never reached."""
    e = runs.evals[runs.evals.run == run]
    refs = json.loads(runs.info.set_index("run").loc[run, "teachers"])
    accs = [teacher_accuracy(teachers, refs, d) for d in sorted(e.domain.unique())]
    if not accs or any(a is None for a in accs):
        return None, None
    level = float(np.mean(accs)) - NEAR_TEACHER
    curve = e.groupby("step").acc.mean()
    reached = curve[curve >= level - 1e-12].index
    return level, (int(reached.min()) if len(reached) else None)


def _wall_at(runs: Runs, run: str, step: int) -> float:
    m = runs.metrics[(runs.metrics.run == run) & (runs.metrics.step == step)]
    return float(m.wall_s.iloc[0]) if len(m) else 0.0  # step 0: the initial student, no time yet


def claim_deficit(runs: Runs, final: pd.DataFrame, teachers: dict) -> list[dict]:
    info = study_cells(runs.info, "study-deficit-")
    rows = []
    present = set(info.deficit) if len(info) else set()
    for kind in sorted(DEFICITS | present):  # a kind without runs still gets its row
        at = info[info.deficit == kind] if len(info) else info
        steps, walls, nums, level_missing = {}, {}, [], False
        for method in ("opd", "uniopd", "grpo"):
            sel = at[at.experiment == f"study-deficit-{method}-{kind}"]
            steps[method] = []
            for run, budget in zip(sel.run, sel.steps):
                level, step = steps_to_teacher(runs, run, teachers)
                level_missing |= level is None
                # never reached: one past the budget, so it ranks behind every run that did
                steps[method].append(step if step is not None else int(budget) + 1)
                if step is not None:
                    walls.setdefault(method, []).append(_wall_at(runs, run, step))
            if len(sel):
                reached = len(walls.get(method, []))
                wall = f", {np.median(walls[method]):.0f} s" if reached else ""
                nums.append(
                    f"{method}: median step {np.median(steps[method]):g} "
                    f"({reached}/{len(sel)} reached{wall}), final {_acc(acc_by_seed(final, sel.run))}"
                )
        v = OPEN
        if level_missing:
            nums.append("no teacher accuracy given for a domain: steps to teacher level unknown")
        elif all(len(steps[m]) >= 2 for m in steps):
            med = {m: float(np.median(s)) for m, s in steps.items()}
            if med["opd"] > med["grpo"] or med["uniopd"] > med["grpo"]:
                v = FAILS
            elif med["opd"] < med["grpo"] / 2 and med["uniopd"] < med["grpo"] / 2:
                v = HOLDS
        rows.append(
            _row(
                f"C5 ({kind})",
                f"OPD / Uni-OPD reach teacher level in far fewer steps than GRPO ({kind} deficit)",
                _cells(at),
                nums,
                v,
                f"steps to teacher = first eval step where accuracy ≥ mean teacher accuracy − "
                f"{NEAR_TEACHER:g} (never: budget + 1); holds if OPD's and Uni-OPD's medians are "
                "both under half GRPO's, does not hold if either exceeds GRPO's, else not "
                "resolvable",
            )
        )
    return rows


def claims_rows(runs: Runs, teachers: dict) -> list[dict]:
    """One row per pre-registered claim (C5: one per deficit kind), each with its verdict."""
    final = final_accuracy(runs)
    return [
        claim_order(runs, final),
        claim_skew(runs, final),
        claim_online(runs, final),
        claim_margin(runs, final),
        *claim_deficit(runs, final, teachers),
    ]


def claims_markdown(rows: list[dict]) -> str:
    lines = ["| claim | cells | numbers | verdict |", "|---|---|---|---|"]
    for r in rows:
        cells = ", ".join(r["cells"]) or "—"
        lines.append(f"| {r['claim']}: {r['text']} | {cells} | {r['numbers']} | {r['verdict']} |")
    lines += [
        "",
        "Reading rules (pre-registered in docs/journal.md, 2026-11-29; with fewer than 2 seeds "
        "every verdict is not resolvable):",
        "",
    ]
    lines += [f"- {r['claim']}: {r['rule']}" for r in rows]
    return "\n".join(lines) + "\n"
