"""What a table or figure rests on, said beside it: how many seeds, how many training steps, how
many held-out samples; and numbers written so that they claim no more than that. A mean over one
seed has no spread (written without ±; the seeds column says n = 1), and a tie has no winner
(nothing bold).

A 5-point gap between two methods on 20 held-out samples is one sample: the line under each table
and the caption of each figure give the reader the counts to judge that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable

from uniopd.analysis.runs import Runs


def pm(mean: float, std: float | None, n: int, digits: int = 3, scale: float = 1.0) -> str:
    """mean ± sample std over n seeds; one seed has no spread: the mean alone, never "± 0" (the
    table's seeds column and its basis line say n = 1)."""
    if n < 2 or std is None or not math.isfinite(std):
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def unique_best(values: dict[Hashable, float], digits: int = 3, scale: float = 1.0):
    """The key with the highest value as written (rounded to `digits`), or None: a tie at the
    written precision, or fewer than two to compare, has no best."""
    shown = {k: round(scale * v, digits) for k, v in values.items() if math.isfinite(v)}
    if len(shown) < 2:
        return None
    top = max(shown.values())
    leaders = [k for k, v in shown.items() if v == top]
    return leaders[0] if len(leaders) == 1 else None


def _samples_per_prompt(row) -> int | None:
    """N of the avg@N column an evaluation row carries (1 under greedy decoding)."""
    for key, value in row.items():
        m = re.fullmatch(r"avg@(\d+)", str(key))
        if m and value == value and value is not None:  # NaN: another run's column
            return int(m.group(1))
    return None


def basis(runs: Runs, names: Iterable[str] | None = None) -> dict:
    """{"runs", "seeds" (per experiment: min, max), "steps" (sorted), "eval" ({domain: sorted
    "P prompts × N samples"})} of the named runs (all when None), from the run tables."""
    info = runs.info
    if len(info) and names is not None:
        info = info[info.run.isin(set(names))]
    if info.empty:
        return {"runs": 0, "seeds": (0, 0), "steps": [], "eval": {}}
    seeds = info.groupby("experiment").seed.nunique()
    out = {
        "runs": int(len(info)),
        "seeds": (int(seeds.min()), int(seeds.max())),
        "steps": sorted({int(s) for s in info.steps}),
        "eval": {},
    }
    e = runs.evals
    if len(e):
        e = e[e.run.isin(set(info.run))]
        last = e[e.step == e.groupby("run").step.transform("max")]
        for _, row in last.iterrows():
            n = _samples_per_prompt(row)
            prompts = row.get("n_prompts")
            size = (
                f"{int(prompts)} prompts × {n} samples"
                if n is not None and prompts == prompts and prompts is not None
                else "size not recorded"
            )
            out["eval"].setdefault(row.domain, set()).add(size)
        out["eval"] = {d: sorted(s) for d, s in sorted(out["eval"].items())}
    return out


def _span(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def basis_line(runs: Runs, names: Iterable[str] | None = None) -> str:
    """One sentence: 'Rests on 6 runs: 2 seeds per experiment, 30 training steps; held-out at
    the last evaluation: code 100 prompts × 4 samples, math ...'."""
    b = basis(runs, names)
    if not b["runs"]:
        return "Rests on no finished run."
    lo, hi = b["seeds"]
    seeds = f"{_span(lo, hi)} seed{'s' if hi > 1 else ''} per experiment"
    if lo == 1:  # written without ±: there is no spread to show
        seeds += " (n = 1 has no ±)"
    steps = b["steps"]
    # a few budgets are listed, not spanned: "2-30" would hide that most runs trained 30
    listed = ", ".join(map(str, steps)) if len(steps) <= 3 else f"{steps[0]}-{steps[-1]}"
    steps_text = f"{listed} training steps" if steps else "steps unknown"
    held = "; ".join(f"{d} {' or '.join(sizes)}" for d, sizes in b["eval"].items()) or "none"
    return (
        f"Rests on {b['runs']} run{'s' if b['runs'] != 1 else ''}: {seeds}, {steps_text}; "
        f"held-out at the last evaluation: {held}."
    )
