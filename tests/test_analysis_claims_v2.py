"""Study v2's claim rows (uniopd/analysis/claims_v2.py) on small run tables built here in the compact
file's schema (the analysis's input data, with known effects): each verdict, Holm's ordering, the
intersection–union of a claim's differences, C4's order condition, C5's steps to teacher level, a
study stopped part-way and a cell not run; then the committed pilot file, read as it is (no study
run in it) and with its runs named as study cells (its documented Uni-OPD − OPD comes back)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uniopd.analysis import inference as inf
from uniopd.analysis.claims_v2 import NOT_RUN, claims_v2_rows
from uniopd.analysis.claims_v2_table import claims_v2_markdown
from uniopd.analysis.compact import read_compact, write_compact
from uniopd.analysis.runs import Runs
from uniopd.analysis.study_v2_data import cell_of, planned_seeds

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "paper_figures" / "study_v2" / "pilot_runs.parquet"


def noise(seeds: int, key: int) -> np.ndarray:
    """Per-seed noise in points with mean exactly 0 and sd exactly 1 (a cell's own, by `key`):
    a difference's mean is then exactly the effect built in."""
    x = np.random.default_rng(key).normal(size=seeds)
    return (x - x.mean()) / x.std(ddof=1)


NOISE, TWIST = noise(12, 0), noise(12, 1)


def cell(name: str, math_pts, code_pts, seeds: int = 12, **metrics) -> list[dict]:
    """One cell's runs: seed s ends at math_pts[s] / code_pts[s] points (a number: every seed);
    `metrics`: per-step values (order/consistency_after, balance/grad_share_correct)."""
    at = lambda v, s: float(v[s]) if np.ndim(v) else float(v)  # noqa: E731
    return [
        {
            "cell": name,
            "seed": s,
            "evals": {"math": {30: at(math_pts, s)}, "code": {30: at(code_pts, s)}},
        }
        | {"metrics": metrics}
        for s in range(seeds)
    ]


def runs_of(*cells: list[dict], steps: int = 30) -> Runs:
    """The run, metrics and eval tables of the given cells, named as the study's queue names runs
    (study2-<folder>-<cell>-s<seed>); accuracy given in points, stored as a share."""
    info, metrics, evals = [], [], []
    for spec in (s for c in cells for s in c):
        folder, name = spec["cell"].split("/")
        exp = f"study2-{folder}-{name}"
        run, seed, budget = f"{exp}-s{spec['seed']}", spec["seed"], spec.get("steps", steps)
        info.append({"run": run, "path": f"/nonexistent/{run}", "experiment": exp, "seed": seed})
        info[-1] |= {"steps": budget, "group": "opd"}
        metrics += [
            {"run": run, "experiment": exp, "seed": seed, "step": t, **spec["metrics"]}
            for t in range(1, budget + 1)
        ]
        for domain, curve in spec["evals"].items():
            evals += [
                {"run": run, "experiment": exp, "seed": seed, "step": t, "domain": domain}
                | {"acc": pts / 100}
                for t, pts in curve.items()
            ]
    return Runs(pd.DataFrame(info), pd.DataFrame(metrics), pd.DataFrame(evals))


def row(rows: list[dict], claim: str, domain: str) -> dict:
    return next(r for r in rows if r["claim"] == claim and r["domain"] == domain)


def base_study(**replace) -> dict[str, list[dict]]:
    """Every 30-step cell, at 20 seeds for C1's and C4's cells and 12 for the rest: 60 points in
    math and 50 in code, each cell with noise of its own (no effect anywhere); `replace` swaps
    cells (a list of runs, or None: the cell not run)."""
    at_20 = ("f0/opd", "f0/uniopd", "f0.6/opd", "f0.6/uniopd", "f0.6/shift_only", "f0.6/bonus")
    rest = ("skew/balance", "skew/none", "skew/drop_all_correct", "skew/drop_all_wrong")
    rest += ("online/r1.0", "online/rinf", "online/no_control")
    cells = {}
    for key, name in enumerate((*at_20, *rest), start=10):
        n = 20 if name in at_20 else 12
        e = noise(n, key)
        cells[name] = cell(name, 60 + e, 50 + e, seeds=n, **{"order/consistency_after": 0.99})
    cells |= replace
    return {k: v for k, v in cells.items() if v is not None}


def test_cells_are_read_from_the_queue_and_group_names_and_plan_as_the_queue_does():
    assert (
        cell_of("study2-f0.6-shift-only") == cell_of("study2-f0.6-shift_only") == "f0.6/shift_only"
    )
    assert cell_of("study2-f0-opd") == "f0/opd" and cell_of("study2-online-r1.0") == "online/r1.0"
    assert cell_of("pilot-opd") is None and cell_of("study-order-opd-f0") is None
    spec = importlib.util.spec_from_file_location(
        "queue", ROOT / "benchmarks" / "study_v2_queue.py"
    )
    queue = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(queue)
    planned = {c: sum(1 for cc, _ in queue.queue() if cc == c) for c, _ in queue.queue()}
    assert planned == {c: planned_seeds(c) for c in planned}  # 20 / 12 / 4, as the queue runs


def test_each_verdict_and_holm_across_the_ten_rows():
    shared = noise(12, 2)  # the code cells of C2 (and C3's cells) move together seed by seed
    skew = {
        f"skew/{m}": cell(
            f"skew/{m}", 60 + noise(12, 20 + i), 50 + shared + 0.1 * noise(12, 30 + i)
        )
        for i, m in enumerate(("none", "drop_all_correct", "drop_all_wrong"))
    }
    cells = base_study(
        # C1: Uni-OPD gains 6 points more at flaw 0.6 in both domains -> holds
        **{"f0.6/uniopd": cell("f0.6/uniopd", 66 + noise(20, 5), 56 + noise(20, 5), seeds=20)},
        # C2: balance 5 points under every baseline in math -> reversed; in code the differences
        # are 0 ± 0.14 -> equivalent within ±1
        **skew,
        **{
            "skew/balance": cell(
                "skew/balance", 55 + noise(12, 3), 50 + shared + 0.1 * noise(12, 4)
            )
        },
        # C3 math: r1.0 above both by 0.7 ± 1 (raw p 0.017, after Holm 0.10) -> unresolved;
        # code: 0 ± 3 -> unresolved
        **{c: cell(c, 60 + shared, 50 + shared) for c in ("online/rinf", "online/no_control")},
        **{"online/r1.0": cell("online/r1.0", 60.7 + shared + TWIST, 50 + shared + 3 * TWIST)},
    )
    rows = claims_v2_rows(runs_of(*cells.values()))
    assert [row(rows, "C1", d)["verdict"] for d in ("math", "code")] == [inf.HOLDS, inf.HOLDS]
    assert row(rows, "C2", "math")["verdict"] == inf.FAILS
    assert row(rows, "C2", "code")["verdict"] == inf.EQUIVALENT
    c3 = row(rows, "C3", "math")
    assert c3["p_better"] < 0.05 and c3["holm_better"] > 0.05  # held uncorrected, not after Holm
    assert c3["verdict"] == inf.OPEN and c3["seeds_to_resolve"] >= 12
    assert row(rows, "C3", "code")["verdict"] == inf.OPEN
    # Holm: each reading adjusted across the 10 (claim, domain) rows, C5 (not run) left out
    family = [
        r for r in rows if r["kind"] == "claim" and r["domain"] != "mean" and r["claim"] != "C5"
    ]
    assert len(family) == 8 and all(
        row(rows, "C5", d)["verdict"] == NOT_RUN for d in ("math", "code")
    )
    for key in ("better", "worse", "equivalent"):
        expected = inf.holm([r[f"p_{key}"] for r in family])
        assert [r[f"holm_{key}"] for r in family] == pytest.approx(expected, nan_ok=True)
    c1 = row(rows, "C1", "math")
    assert c1["differences"][0]["mean"] == pytest.approx(6.0)
    assert (c1["n"], c1["planned"]) == (20, 20)
    assert row(rows, "C1", "mean")["verdict"] == "—"  # beside, never tested
    table = claims_v2_markdown(rows)
    assert "**reversed**" in table and "**equivalent**" in table and "seeds would resolve" in table


def test_a_claim_with_several_differences_needs_all_of_them():
    """C3: r1.0 − rinf is large, r1.0 − no_control is null: the claim does not hold; its p for
    holds is the larger of the two, its p for reversed the smaller."""
    cells = base_study(
        **{"online/rinf": cell("online/rinf", 54 + noise(12, 7), 44 + noise(12, 7))},
    )
    rows = claims_v2_rows(runs_of(*cells.values()))
    c3 = row(rows, "C3", "math")
    inf_d, none_d = c3["differences"]
    assert inf_d["mean"] == pytest.approx(6.0) and inf_d["p_better"] < 1e-4
    assert c3["p_better"] == max(inf_d["p_better"], none_d["p_better"]) == none_d["p_better"]
    assert c3["p_worse"] == min(inf_d["p_worse"], none_d["p_worse"])
    assert c3["verdict"] != inf.HOLDS


@pytest.mark.slow  # about 1 s: two studies read (Holm's statsmodels call collects garbage)
def test_c4_holds_only_where_order_is_restored():
    shift = cell("f0.6/shift_only", 66 + noise(20, 6), 56 + noise(20, 6), seeds=20)
    shift = [s | {"metrics": {"order/consistency_after": 0.99}} for s in shift]
    restored = claims_v2_rows(runs_of(*base_study(**{"f0.6/shift_only": shift}).values()))
    assert row(restored, "C4", "math")["verdict"] == inf.HOLDS
    assert row(restored, "C4", "math")["order_after"] == pytest.approx(0.99)
    for s in shift:
        s["metrics"] = {"order/consistency_after": 0.5}
    left = claims_v2_rows(runs_of(*base_study(**{"f0.6/shift_only": shift}).values()))
    c4 = row(left, "C4", "code")
    assert c4["holm_better"] < 0.05 and c4["verdict"] == inf.OPEN and "order after" in c4["note"]


@pytest.mark.slow  # about 1 s: two studies read (Holm's statsmodels call collects garbage)
def test_a_study_stopped_part_way_reads_the_pairs_it_has_and_a_missing_cell_is_not_run():
    cells = base_study(**{"f0.6/uniopd": cell("f0.6/uniopd", 66, 56, seeds=3), "skew/none": None})
    cells.pop("f0/shift_only", None)
    for run in cells["online/rinf"]:  # evaluated in math only: C3 cannot be read in code
        del run["evals"]["code"]
    rows = claims_v2_rows(runs_of(*cells.values()))
    assert row(rows, "C3", "math")["verdict"] != NOT_RUN
    assert row(rows, "C3", "code")["missing"] == ["online/rinf"]
    c1 = row(rows, "C1", "math")
    assert (c1["n"], c1["planned"]) == (3, 20) and "3 / 20" in claims_v2_markdown(rows)
    c2 = row(rows, "C2", "code")
    assert c2["verdict"] == NOT_RUN and c2["missing"] == ["skew/none"]
    assert [d["label"] for d in c2["differences"]] == [  # the pairs it can read, still shown
        "skew/balance − skew/drop_all_correct",
        "skew/balance − skew/drop_all_wrong",
    ]
    shift = row(rows, "f0/shift_only − f0/opd", "math")
    assert shift["verdict"] == NOT_RUN and shift["kind"] == "explanatory"
    one = claims_v2_rows(
        runs_of(*base_study(**{"f0.6/uniopd": cell("f0.6/uniopd", 66, 56, 1)}).values())
    )
    assert (
        row(one, "C1", "math")["verdict"] == inf.OPEN
        and "1 pairs" in row(one, "C1", "math")["note"]
    )


def horizon(method: str, reach: dict[str, int | None], seeds: int = 4) -> list[dict]:
    """A horizon cell whose curve (every 10 steps of 200) first reaches each domain's teacher
    level at step reach[domain] (None: never, staying 10 points under)."""
    levels = {"math": 96.0, "code": 65.0}
    out = []
    for s in range(seeds):
        evals = {}
        for domain, at in reach.items():
            at = None if at is None else at + 10 * (s % 2)  # seeds differ by one evaluation
            evals[domain] = {
                t: levels[domain] + (1 if at is not None and t >= at else -10)
                for t in range(0, 201, 10)
            }
        out.append(
            {"cell": f"horizon/{method}", "seed": s, "evals": evals, "metrics": {}, "steps": 200}
        )
    return out


@pytest.mark.slow  # about 1 s: two studies read (Holm's statsmodels call collects garbage)
def test_c5_steps_to_teacher_level_on_a_log2_scale():
    """GRPO never reaches math (400 steps: 2 × 200) and reaches code at 160/170; OPD and Uni-OPD
    reach both at 20/30: log2 ratios about 4.2 (math) and 2.7 (code), both > 1 -> holds; with
    GRPO needing under twice OPD's steps the one-sided test of log2 ratio < 1 rejects: reversed."""
    fast = {"math": 20, "code": 20}
    rows = claims_v2_rows(
        runs_of(
            horizon("grpo", {"math": None, "code": 160}),
            horizon("opd", fast),
            horizon("uniopd", fast),
        )
    )
    math_row, code_row = row(rows, "C5", "math"), row(rows, "C5", "code")
    opd = math_row["differences"][0]
    expected = np.mean([math.log2(400 / 20), math.log2(400 / 30)] * 2)
    assert opd["mean"] == pytest.approx(expected) and opd["n"] == 4 and opd["planned"] == 4
    assert math_row["verdict"] == code_row["verdict"] == inf.HOLDS
    assert math.isnan(math_row["p_equivalent"])  # C5 has no equivalence reading
    # GRPO at 30/40 steps, OPD at 20/30: about 1.4 times the steps, log2 0.42-0.58 -> reversed
    close = claims_v2_rows(
        runs_of(
            horizon("grpo", {"math": 30, "code": 30}), horizon("opd", fast), horizon("uniopd", fast)
        )
    )
    c5 = row(close, "C5", "code")
    assert c5["differences"][0]["mean"] == pytest.approx(
        np.mean([math.log2(3 / 2), math.log2(4 / 3)])
    )
    assert c5["verdict"] == inf.FAILS
    # each row says how many runs reached teacher level: "never" counts as 2 x the budget
    assert math_row["reached"] == {
        "horizon/grpo": "0/4",
        "horizon/opd": "4/4",
        "horizon/uniopd": "4/4",
    }
    assert row(rows, "C5", "code")["reached"]["horizon/grpo"] == "4/4"
    assert "reached teacher level: grpo 0/4, opd 4/4, uniopd 4/4" in claims_v2_markdown(rows)
    assert "censoring rule alone" not in claims_v2_markdown(rows)
    # no run of any cell reaches math: every ratio is 1 by the rule, and the row says so
    never = {"math": None, "code": 160}
    censored = claims_v2_rows(
        runs_of(horizon("grpo", never), horizon("opd", never), horizon("uniopd", never))
    )
    text = claims_v2_markdown(censored)
    assert row(censored, "C5", "math")["differences"][0]["mean"] == 0.0
    assert "grpo 0/4, opd 0/4, uniopd 0/4 (no run reached it: the verdict comes from the " in text
    assert text.count("censoring rule alone") == 1  # code's runs reached it


def test_the_committed_pilot_file_has_no_study_run():
    """The pilot's runs (pilot-*) are not study data: every claim reads "not run yet"."""
    rows = claims_v2_rows(read_compact(PILOT))
    assert rows and {r["verdict"] for r in rows} == {NOT_RUN}
    assert "not run yet (f0.6/opd, f0.6/uniopd, f0/opd, f0/uniopd)" in claims_v2_markdown(rows)


def _pilot_as_study(tmp_path: Path) -> Path:
    """The pilot's runs named as the flaw-0 OPD and Uni-OPD cells (same settings, 4 seeds), into
    a compact file: only to check the reading against docs/study.md's amendment."""
    pilot = read_compact(PILOT)
    name = lambda df: df.assign(  # noqa: E731
        **{c: df[c].str.replace("pilot-", "study2-f0-") for c in ("run", "experiment") if c in df}
    )
    write_compact(
        Runs(name(pilot.info), name(pilot.metrics), name(pilot.evals)), tmp_path / "p.parquet"
    )
    return tmp_path / "p.parquet"


def test_the_pilot_named_as_study_cells_gives_its_documented_difference(tmp_path):
    """docs/study.md (2026-12-07): Uni-OPD − OPD over 4 seeds −5.0 (95 % CI −10.9 to +0.8) math,
    −6.0 (−9.4 to −2.6) code."""
    rows = claims_v2_rows(read_compact(_pilot_as_study(tmp_path)))
    for domain, (mean, low, high) in {
        "math": (-5.0, -10.9, 0.8),
        "code": (-6.0, -9.4, -2.6),
    }.items():
        d = row(rows, "f0/uniopd − f0/opd", domain)["differences"][0]
        assert (d["n"], d["planned"]) == (4, 20)
        assert (d["mean"], d["ci_low"], d["ci_high"]) == pytest.approx((mean, low, high), abs=0.05)
    assert row(rows, "C1", "math")["verdict"] == NOT_RUN


@pytest.mark.slow
def test_figures_command_writes_the_claims_or_lists_them_missing(tmp_path):
    """`uniopd figures FILE.parquet`: with study2- runs, claims_v2.md / .json and the effects
    figure; without (the pilot as committed), each listed as missing."""
    from uniopd.analysis.claims_v2_figures import (
        fig_claims_v2_effects,
        fig_study_v2_grad_share,
        fig_study_v2_horizon,
    )
    from uniopd.analysis.make import _claims_v2, make_all

    manifest = make_all([str(_pilot_as_study(tmp_path))], tmp_path / "with", {})
    tables = {t["name"]: t for t in manifest["tables"]}
    assert tables["claims_v2"]["files"] == ["claims_v2.md", "claims_v2.json"]
    assert len(tables["claims_v2"]["runs"]) == 8
    assert "claims_v2_effects" in {f["name"] for f in manifest["figures"]}
    assert {"study_v2_grad_share", "study_v2_horizon"} <= {m["name"] for m in manifest["missing"]}
    doc = json.loads((tmp_path / "with" / "claims_v2.json").read_text())
    assert row(doc, "f0/uniopd − f0/opd", "code")["differences"][0]["n"] == 4
    assert (tmp_path / "with" / "claims_v2_effects.png").stat().st_size > 10_000
    pilot, listed = read_compact(PILOT), {"missing": [], "tables": []}
    _claims_v2(pilot, tmp_path / "without", listed)
    assert [m["name"] for m in listed["missing"]] == ["claims_v2"] and not listed["tables"]
    for fig in (fig_claims_v2_effects, fig_study_v2_grad_share, fig_study_v2_horizon):
        assert fig(pilot, tmp_path / "without", {}) is None  # make_all lists it as missing


@pytest.mark.slow
def test_the_ratio_and_horizon_figures(tmp_path):
    from uniopd.analysis.claims_v2_figures import fig_study_v2_grad_share, fig_study_v2_horizon

    share = {"balance/grad_share_correct": 0.3}
    runs = runs_of(
        cell("online/r1.0", 60, 50, seeds=2, **share),
        cell("online/rinf", 60, 50, seeds=2, **{"balance/grad_share_correct": 0.6}),
        horizon("grpo", {"math": None, "code": 160}, seeds=2),
        horizon("opd", {"math": 20, "code": 20}, seeds=2),
    )
    for fig in (
        fig_study_v2_grad_share(runs, tmp_path, {}),
        fig_study_v2_horizon(runs, tmp_path, {}),
    ):
        assert fig is not None and all(Path(f).stat().st_size > 5_000 for f in fig.files)
    assert len(fig_study_v2_grad_share(runs, tmp_path, {}).runs) == 4
    no_share = runs_of(cell("online/r1.0", 60, 50, seeds=2))
    assert fig_study_v2_grad_share(no_share, tmp_path, {}) is None
