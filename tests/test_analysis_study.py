"""The study's analysis: each pre-registered reading rule on small run tables built here (the
analysis's input data), with a case where the claim holds, one where it does not and one where it
is not resolvable; then the figures and claims.md from real runs on the smoke world (slow)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from uniopd.analysis.claims import FAILS, HOLDS, OPEN, claims_markdown, claims_rows
from uniopd.analysis.figures import fig_filtering, fig_online_ratio
from uniopd.analysis.runs import Runs
from uniopd.analysis.study_data import early_order
from uniopd.analysis.study_figures import fig_dial_effects, fig_gain_vs_order, gain_points

WORLD_TEACHERS = {"code": "builtin:teacher-code", "math": "builtin:teacher-math"}


def cell(experiment: str, finals: list[float], steps: int = 30, **fields) -> list[dict]:
    """One cell's runs, seed i ending at finals[i] (mean over its domains); fields: info columns,
    `order` / `after` (a value, or {step: value}), `curve` ({step: acc}, replacing the two-point
    start/end curve), `domains` (evaluated on; default math and code), `teachers`."""
    return [
        {
            "experiment": experiment,
            "seed": seed,
            "steps": steps,
            "curve": fields.get("curve", {0: 0.1, steps: acc}),
            **fields,
        }
        for seed, acc in enumerate(finals)
    ]


def _at(spec: dict, key: str, step: int) -> float:
    value = spec.get(key, math.nan)
    return value.get(step, math.nan) if isinstance(value, dict) else value


def runs_of(*cells: list[dict]) -> Runs:
    """The three tables load_runs builds, one row per run / (run, step) / (run, step, domain)."""
    info, metrics, evals = [], [], []
    for spec in (s for c in cells for s in c):
        run, exp, seed = f"{spec['experiment']}-s{spec['seed']}", spec["experiment"], spec["seed"]
        info.append(
            {
                "run": run,
                "path": f"/nonexistent/{run}",
                "experiment": exp,
                "seed": seed,
                "method": spec.get("method", "opd"),
                "offline_mode": spec.get("offline_mode", "none"),
                "online_ratio": spec.get("online_ratio"),
                "calibration": spec.get("calibration", "off"),
                "steps": spec["steps"],
                "student": "builtin:student",
                "teachers": json.dumps(spec.get("teachers", WORLD_TEACHERS)),
                "teacher_flaw": spec.get("teacher_flaw", 0.0),
                "deficit": spec.get("deficit", "habit"),
                "difficulty_skew": spec.get("difficulty_skew"),
            }
        )
        for step in range(1, spec["steps"] + 1):
            metrics.append(
                {
                    "run": run,
                    "experiment": exp,
                    "seed": seed,
                    "step": step,
                    "wall_s": 2.0 * step,
                    "order/consistency_before": _at(spec, "order", step),
                    "order/group_consistency_before": _at(spec, "order", step),
                    "order/consistency_after": _at(spec, "after", step),
                }
            )
        for step, acc in spec["curve"].items():
            domains = spec.get("domains", ("math", "code"))
            for domain, off in zip(domains, (0.02, -0.02) if len(domains) == 2 else (0.0,)):
                evals.append(
                    {
                        "run": run,
                        "experiment": exp,
                        "seed": seed,
                        "step": step,
                        "domain": domain,
                        "acc": acc + off,
                    }
                )
    return Runs(pd.DataFrame(info), pd.DataFrame(metrics), pd.DataFrame(evals))


def claim(runs: Runs, name: str, teachers: dict | None = None) -> dict:
    return next(r for r in claims_rows(runs, teachers or {}) if r["claim"] == name)


# ---- C1: the gain grows as measured order consistency falls


def order_study(gain_lo: list[float], gain_hi: list[float], oc_f0=0.9, oc_f06=0.5) -> Runs:
    """OPD at 0.5 everywhere; Uni-OPD adds gain_lo at flaw 0.6 and gain_hi at flaw 0."""
    opd = [0.5] * len(gain_lo)
    return runs_of(
        cell("study-order-opd-f0", opd, teacher_flaw=0.0, order=oc_f0),
        cell("study-order-uniopd-f0", [0.5 + g for g in gain_hi], teacher_flaw=0.0),
        cell("study-order-opd-f0.6", opd, teacher_flaw=0.6, order=oc_f06),
        cell("study-order-uniopd-f0.6", [0.5 + g for g in gain_lo], teacher_flaw=0.6),
    )


def test_c1_order_gain():
    holds = order_study([0.10, 0.09, 0.11], [0.0, 0.01, -0.01])
    row = claim(holds, "C1")
    assert row["verdict"] == HOLDS
    assert "f=0.6: gain +0.100 ± 0.010 (3 seeds), OC 0.500" in row["numbers"]
    assert "gain(lowest OC, f=0.6) − gain(highest OC, f=0) = +0.100 ± 0.020" in row["numbers"]
    assert claim(order_study([0.0, 0.01, -0.01], [0.10, 0.09, 0.11]), "C1")["verdict"] == FAILS
    # lo / hi are read from the measured order consistency, not from the flaw's nominal value
    swapped = order_study([0.10, 0.09, 0.11], [0.0, 0.01, -0.01], oc_f0=0.5, oc_f06=0.95)
    assert claim(swapped, "C1")["verdict"] == FAILS
    assert claim(order_study([0.05, -0.05, 0.02], [0.0] * 3), "C1")["verdict"] == OPEN
    tied = claim(order_study([0.10, 0.09, 0.11], [0.0] * 3, oc_f0=0.7, oc_f06=0.7), "C1")
    assert tied["verdict"] == OPEN and "does not differ" in tied["numbers"]
    assert claim(order_study([0.10], [0.0]), "C1")["verdict"] == OPEN  # one seed


def test_measured_order_is_the_first_ten_steps_and_gain_is_paired_by_seed():
    first_ten = {s: 0.5 if s <= 10 else 1.0 for s in range(1, 31)}
    runs = runs_of(
        cell("study-order-opd-f0.4", [0.5, 0.6], teacher_flaw=0.4, order=first_ten),
        cell("study-order-uniopd-f0.4", [0.7, 0.5], teacher_flaw=0.4),
    )
    assert early_order(runs).dropna().round(6).to_dict() == {
        "study-order-opd-f0.4-s0": 0.5,
        "study-order-opd-f0.4-s1": 0.5,
    }
    p = gain_points(runs).sort_values("seed")
    assert p.gain.round(6).tolist() == [0.2, -0.1] and p.order_consistency.tolist() == [0.5, 0.5]


# ---- C2: offline balancing, read at the highest skew


def skew_study(wrong_at_08: list[float]) -> Runs:
    def mode(name, s, accs):
        exp = f"study-skew-{name.replace('_', '-')}-s{s}"
        return cell(exp, accs, offline_mode=name, difficulty_skew=s)

    cells = []
    for s, bal in ((0.4, [0.4, 0.4, 0.41]), (0.8, [0.6, 0.61, 0.62])):
        cells += [
            mode("balance", s, bal),
            mode("none", s, [0.5, 0.5, 0.5]),
            mode("drop_all_correct", s, [0.55, 0.56, 0.55]),
            mode("drop_all_wrong", s, wrong_at_08 if s == 0.8 else [0.5, 0.5, 0.5]),
        ]
    return runs_of(*cells)


def test_c2_offline_balancing():
    row = claim(skew_study([0.52, 0.5, 0.53]), "C2")
    # at skew 0.4 balancing loses to no balancing; the verdict is read at the highest skew, 0.8
    assert row["verdict"] == HOLDS
    assert "skew 0.4: balance − none -0.097 ± 0.006 (3 seeds)" in row["numbers"]
    assert claim(skew_study([0.7, 0.7, 0.71]), "C2")["verdict"] == FAILS
    assert claim(skew_study([0.6, 0.62, 0.6]), "C2")["verdict"] == OPEN


# ---- C3: online balancing near r = 1


def online_study(inf: list[float], none: list[float]) -> Runs:
    def ratio(name, r, accs):
        return cell(f"study-online-{name}", accs, online_ratio=r)

    return runs_of(
        ratio("r0.5", 0.5, [0.9, 0.9, 0.9]),  # the best, but not near 1: never b
        ratio("r1.0", 1.0, [0.6, 0.61, 0.6]),
        ratio("r1.2", 1.2, [0.65, 0.66, 0.67]),
        ratio("rinf", math.inf, inf),
        ratio("none", None, none),
    )


def test_c3_online_balancing():
    row = claim(online_study([0.5, 0.5, 0.52], [0.55, 0.54, 0.56]), "C3")
    assert row["verdict"] == HOLDS and "best near 1: r=1.2" in row["numbers"]
    assert row["numbers"].startswith("no control: 0.550 ± 0.010 (n=3)")
    assert claim(online_study([0.7, 0.7, 0.7], [0.55, 0.54, 0.56]), "C3")["verdict"] == FAILS
    assert claim(online_study([0.5, 0.5, 0.52], [0.66, 0.64, 0.68]), "C3")["verdict"] == OPEN


# ---- C4: margin calibration at teacher_flaw 0.6


def margin_study(shift: list[float], after: float) -> Runs:
    at = {"teacher_flaw": 0.6}
    return runs_of(
        cell("study-margin-none", [0.5, 0.5, 0.51], **at),
        cell("study-margin-mean-both", shift, calibration="shift", after=after, **at),
        cell("study-margin-minmax-both", [0.5, 0.52, 0.5], calibration="shift", after=0.9, **at),
        cell("study-margin-mask", [0.45, 0.46, 0.45], calibration="mask", after=1.0, **at),
    )


def test_c4_margin_calibration():
    row = claim(margin_study([0.6, 0.61, 0.6], after=0.97), "C4")
    assert row["verdict"] == HOLDS
    assert "mask minus none -0.050 ± 0.010 (3 seeds), order after 1.000" in row["numbers"]
    assert "minmax-both minus none" in row["numbers"]
    # it helps, but the pairs are not put back in order: not resolvable
    assert claim(margin_study([0.6, 0.61, 0.6], after=0.9), "C4")["verdict"] == OPEN
    assert claim(margin_study([0.4, 0.41, 0.4], after=0.99), "C4")["verdict"] == FAILS


# ---- C5: steps to teacher level, OPD / Uni-OPD against GRPO


def reaching(at: int | None, top: float = 0.8) -> dict:
    """An eval curve every 5 steps that first reaches `top` at step `at` (never: stays at 0.6)."""
    return {s: (top if at is not None and s >= at else 0.6 if s else 0.3) for s in range(0, 31, 5)}


def deficit_study(opd: int | None, uniopd: int | None, grpo: int | None) -> Runs:
    return runs_of(
        *[
            cell(f"study-deficit-{m}-habit", [0.0] * 3, curve=reaching(at), method=m[:4])
            for m, at in (("opd", opd), ("uniopd", uniopd), ("grpo", grpo))
        ]
    )


def test_c5_steps_to_teacher():
    teachers = {"math": 0.8, "code": 0.8}  # teacher level: 0.75
    row = claim(deficit_study(5, 10, None), "C5 (habit)", teachers)
    assert row["verdict"] == HOLDS
    # GRPO never reaches it: 31, one past the budget; OPD's wall time at step 5 is 10 s
    assert "grpo: median step 31 (0/3 reached)" in row["numbers"]
    assert "opd: median step 5 (3/3 reached, 10 s), final 0.800 ± 0.000 (n=3)" in row["numbers"]
    assert claim(deficit_study(25, 10, 10), "C5 (habit)", teachers)["verdict"] == FAILS
    assert claim(deficit_study(5, 10, 15), "C5 (habit)", teachers)["verdict"] == OPEN
    missing = claim(deficit_study(5, 10, None), "C5 (habit)", {"math": 0.8})
    assert missing["verdict"] == OPEN and "no teacher accuracy" in missing["numbers"]


def test_claims_markdown_lists_every_claim_and_its_rule():
    runs = runs_of(cell("study-order-opd-f0", [0.5]))
    text = claims_markdown(claims_rows(runs, {}))
    lines = text.splitlines()
    assert lines[0] == "| claim | cells | numbers | verdict |"
    table = [line for line in lines if line.startswith("| C")]
    assert [line.split(":")[0] for line in table] == [
        "| C1",
        "| C2",
        "| C3",
        "| C4",
        "| C5 (habit)",
        "| C5 (skill)",
    ]
    # no pair of cells: nothing to read, not a verdict
    assert all(line.endswith(f"| {OPEN} |") for line in table)
    assert sum(line.startswith("- C") for line in lines) == 6


def test_figures_from_run_tables(tmp_path):
    runs = runs_of(
        cell("study-order-opd-f0", [0.5, 0.52], teacher_flaw=0.0, order=0.9),
        cell("study-order-uniopd-f0", [0.55, 0.5], teacher_flaw=0.0, order=0.8),
        # a second flaw and a second deficit: a dial of one value draws no panel
        cell("study-order-opd-f0.6", [0.5, 0.5], teacher_flaw=0.6, order=0.5),
        cell("study-order-uniopd-f0.6", [0.6, 0.6], teacher_flaw=0.6, order=0.5),
        cell("study-deficit-grpo-skill", [0.4, 0.6], method="grpo", deficit="skill"),
        cell("study-deficit-grpo-habit", [0.7], method="grpo", deficit="habit"),
        # evaluated on math only, taught there by a checkpoint outside the world: not a dial reading
        cell(
            "coin-opd",
            [0.5],
            order=0.1,
            domains=("math",),
            teachers={**WORLD_TEACHERS, "math": "/ckpt/coin"},
        ),
    )
    fig = fig_gain_vs_order(runs, tmp_path, {})
    doc = json.loads((tmp_path / "gain_vs_order.json").read_text())
    assert [round(p["gain"], 6) for p in doc["points"]] == [0.05, -0.02, 0.1, 0.1]
    assert fig.extra == {"numbers": "gain_vs_order.json"} and len(fig.files) == 2
    fig = fig_dial_effects(runs, tmp_path, {})
    doc = json.loads((tmp_path / "dial_effects.json").read_text())
    assert set(doc) == {"order", "deficit"}  # no histograms.json: no skew panel
    assert doc["order"]["by_flaw"]["0"]["pairwise"]["mean"] == pytest.approx(0.85)
    assert "coin-opd-s0" not in {r["run"] for r in doc["order"]["runs"]}
    end = {(r["deficit"], r["domain"], r["when"]): r for r in doc["deficit"]}
    skill = end[("skill", "math", "end")]
    assert skill["mean"] == pytest.approx(0.52) and skill["seeds"] == 2
    assert fig_dial_effects(runs_of(cell("x", [0.5])), tmp_path, {}) is None


def test_ratio_and_filtering_figures_take_baselines_from_their_own_world(tmp_path):
    """Plain OPD runs of other worlds (a flawed teacher, a deficit) or budgets are not "no
    control" or "raw" for runs at skew 0.8: averaging them in mixed worlds in one bar."""
    skewed = {"difficulty_skew": 0.8}
    runs = runs_of(
        cell("study-online-none", [0.8, 0.82], **skewed),
        cell("study-online-r1.0", [0.85, 0.84], online_ratio=1.0, **skewed),
        cell("study-online-rinf", [0.86, 0.88], online_ratio=math.inf, **skewed),
        cell("study-skew-balance-s0.8", [0.87, 0.85], offline_mode="balance", **skewed),
        cell("study-order-opd-f0.6", [0.6, 0.62], teacher_flaw=0.6),
        cell("study-deficit-opd-skill", [0.6, 0.61], deficit="skill"),
        cell("dial-skew-s0.8", [0.7], steps=1, **skewed),
    )
    other = {"study-order-opd-f0.6", "study-deficit-opd-skill", "dial-skew-s0.8"}
    for fig in (fig_online_ratio(runs, tmp_path, {}), fig_filtering(runs, tmp_path, {})):
        assert fig is not None
        assert "study-online-none-s0" in fig.runs and "study-online-none-s1" in fig.runs
        assert not {r.rsplit("-s", 1)[0] for r in fig.runs} & other, fig.runs


# ---- real runs: the coin task taught by the smoke world's (flawed) experts

TINY = [
    "train.steps=4",
    "train.warmup_steps=0",
    "eval.every=2",
    "eval.n_samples=2",
    "eval.pass_k=[1,2]",
    "eval.max_prompts_per_domain=6",
    "rollout.group_size=4",
    "rollout.prompts_per_batch=4",
    "rollout.max_new_tokens=8",
    "balance.offline.n_samples=2",
    "output.progress=false",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory, coin):
    """A small slice of the study, 2 seeds of the order cells: the coin student (about half its
    answers right, so groups are mixed) taught by the smoke world's experts at teacher_flaw 0 and
    0.4 (both tokenizers come from world.tokenizer.train_tokenizer; a run start refuses a teacher
    of another vocabulary, so a drift fails here loudly); skewed lists of the coin prompts; GRPO
    on the world's own student with either deficit."""
    from uniopd.commands.cli import main

    root = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNIOPD_WORLD", "smoke")
        mp.setenv("UNIOPD_HOME", str(root / "home"))
        base = [
            f"data.train=[{coin['data']}]",
            f"data.eval=[{coin['data']}]",
            f"output.root={root / 'runs'}",
            *TINY,
        ]

        def run(path: str, name: str, *extra: str) -> None:
            assert (
                main(["run", f"experiments/study/{path}.yaml", *base, *extra, f"name={name}"]) == 0
            )

        student = f"student={coin['student']}"
        for f in ("0", "0.4"):
            for method in ("opd", "uniopd"):
                for seed in (0, 1):
                    name = f"study-order-{method}-f{f}-s{seed}"
                    run(f"order/{method}_f{f}", name, student, f"seed={seed}")
        for mode, s in (("balance", "0.4"), ("none", "0.4"), ("balance", "0.8")):
            # the coin data hold 24 prompts, not the study's 300 per domain
            run(
                f"skew/{mode}_s{s}",
                f"study-skew-{mode}-s{s}-s0",
                student,
                "world.difficulty_skew_size=null",
            )
        for kind in ("habit", "skill"):
            run(f"deficit/grpo_{kind}", f"study-deficit-grpo-{kind}-s0")
    return root / "runs"


def _final(run) -> float:
    last = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    accs = [v["acc"] for v in last.values() if isinstance(v, dict)]
    return sum(accs) / len(accs)


def _measured(run) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    values = [
        r["order/consistency_before"]
        for r in rows[:10]
        if r["order/consistency_before"] is not None
    ]
    return sum(values) / len(values)


@pytest.mark.world  # builds the smoke world twice (two teacher flaws) and trains 13 tiny runs
def test_study_figures_and_claims_from_real_runs(study, tmp_path):
    from uniopd.commands.cli import main

    out = tmp_path / "paper_figures"
    assert main(["figures", str(study), "--teacher", "math=0.5", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    figures = {f["name"]: f for f in manifest["figures"]}
    assert figures["dial_effects"]["numbers"] == "dial_effects.json"
    assert figures["gain_vs_order"]["numbers"] == "gain_vs_order.json"
    for name in ("dial_effects", "gain_vs_order"):
        for file in figures[name]["files"]:
            assert (out / file).stat().st_size > 5000, file  # a real rendering, PNG and PDF

    dials = json.loads((out / "dial_effects.json").read_text())
    assert set(dials) == {"order", "skew", "deficit"}
    assert set(dials["order"]["by_flaw"]) == {"0", "0.4"}
    assert set(dials["skew"]) == {"0.4", "0.8"}
    for h in dials["skew"].values():
        assert sum(h["before"]) == pytest.approx(1) and sum(h["natural"]) == pytest.approx(1)
    assert {r["deficit"] for r in dials["deficit"]} == {"habit", "skill"}

    # the gain and the order it is plotted against, recomputed from the run directories
    points = json.loads((out / "gain_vs_order.json").read_text())["points"]
    assert len(points) == 4
    for p in points:
        opd, uni = study / p["opd_run"], study / p["uniopd_run"]
        assert p["gain"] == pytest.approx(_final(uni) - _final(opd))
        assert p["order_consistency"] == pytest.approx(_measured(opd))

    claims = (out / "claims.md").read_text()
    table = {t["name"]: t for t in manifest["tables"]}
    assert table["claims"]["files"] == ["claims.md"] and len(table["claims"]["runs"]) == 13
    assert "| C1: Uni-OPD's gain over OPD grows" in claims and "study-order-opd-f0.4" in claims
    assert "- C4: at teacher_flaw 0.6" in claims
