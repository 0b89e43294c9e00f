"""Tables from the same DataFrames as the figures: the benchmark table (methods x domains, mean ±
sample std over seeds, the one best in bold: a tie has none) and the ablation table, each as
Markdown and LaTeX. One seed is written without ± (uniopd/analysis/basis.py); make.py puts what
the table rests on (seeds, steps, held-out samples) under it."""

from __future__ import annotations

import json

import pandas as pd

from uniopd.analysis.basis import pm, unique_best
from uniopd.analysis.cells import with_world
from uniopd.analysis.runs import Runs, teacher_accuracy
from uniopd.labels import METHOD_ORDER, method_rank


def _final(runs: Runs) -> pd.DataFrame:
    e = runs.evals
    return e[e.step == e.groupby("run").step.transform("max")]


def _stats(runs: Runs) -> pd.DataFrame:
    """Per experiment and domain: start, end mean/std, seeds, steps to teacher, order consistency."""
    f = _final(runs)
    start = runs.evals[runs.evals.step == 0].groupby(["experiment", "domain"]).acc.mean()
    g = f.groupby(["experiment", "domain"]).acc
    out = pd.DataFrame(
        {"start": start, "mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "seeds": g.size()}
    )
    return out.reset_index()


def _steps_to(
    runs: Runs, experiment: str, domain: str, teachers: dict
) -> tuple[int, int, float | None, float | None]:
    """(runs that reached their teacher's accuracy, runs, mean first step reaching it, teacher acc)."""
    e = runs.evals[(runs.evals.experiment == experiment) & (runs.evals.domain == domain)]
    info = runs.info.set_index("run")
    hits, total, target = [], 0, None
    for run, curve in e.groupby("run"):
        target = teacher_accuracy(teachers, json.loads(info.loc[run, "teachers"]), domain)
        if target is None:
            return 0, 0, None, None
        total += 1
        reached = curve[curve.acc >= target].step
        if len(reached):
            hits.append(int(reached.min()))
    return len(hits), total, (sum(hits) / len(hits) if hits else None), target


def ablation_rows(
    runs: Runs, teachers: dict[str, float], order: list[str] | None = None
) -> list[dict]:
    stats = _stats(runs)
    firsts = runs.info.drop_duplicates("experiment")
    experiments = order or sorted(
        firsts.experiment,
        key=lambda e: (method_rank(firsts[firsts.experiment == e].group.iloc[0]), e),
    )
    domains = sorted(stats.domain.unique())
    m = runs.metrics
    rows = []
    for exp in experiments:
        s = stats[stats.experiment == exp]
        if s.empty:
            continue
        first = runs.info[runs.info.experiment == exp].iloc[0]
        row = {
            "experiment": exp,
            "group": first.group,
            "setting": first.setting,
            "seeds": int(s.seeds.max()),
        }
        for d in domains:
            x = s[s.domain == d]
            if len(x):
                row[d] = (
                    float(x.start.iloc[0]),
                    float(x["mean"].iloc[0]),
                    float(x["std"].iloc[0]),
                    int(x.seeds.iloc[0]),
                )
            if len(x):
                row[f"reach/{d}"] = _steps_to(runs, exp, d, teachers)
        if "order/consistency_before" in m:
            v = m[m.experiment == exp]["order/consistency_before"].dropna()
            row["order_before"] = float(v.mean()) if len(v) else None
        rows.append(row)
    return rows


def _domains(rows: list[dict]) -> list[str]:
    return sorted(
        {
            k
            for r in rows
            for k in r
            if k not in ("experiment", "group", "setting", "seeds", "order_before")
            and not k.startswith("reach/")
        }
    )


def ablation_markdown(rows: list[dict], teachers: dict[str, float]) -> str:
    domains = _domains(rows)
    head = [
        "experiment",
        "method",
        "teachers",
        "seeds",
        *[f"{d}: start → end (± std over seeds)" for d in domains],
        *[f"reached the {d} teacher" for d in domains],
        "order consistency before calibration",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["experiment"], r["group"], r["setting"], str(r["seeds"])]
        cells += [f"{r[d][0]:.3f} → {pm(*r[d][1:])}" if d in r else "—" for d in domains]
        for d in domains:
            hit, total, mean, target = r.get(f"reach/{d}", (0, 0, None, None))
            cells.append(
                "—"
                if target is None
                else f"{hit}/{total} runs (teacher {target:.3f})"
                + (f", step {mean:.0f}" if mean is not None else "")
            )
        ob = r.get("order_before")
        cells.append(f"{ob:.3f}" if ob is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _row_names(f: pd.DataFrame) -> pd.Series:
    """A row's method label: the method group, with the experiment added where one method has
    runs of several experiment files under one teacher setting and world."""
    files = f.groupby(["setting", "world", "group"]).experiment.transform("nunique")
    return f.group.where(files <= 1, f.group + " (" + f.experiment + ")")


def benchmark_table(runs: Runs, teachers: dict[str, float], groups=METHOD_ORDER) -> tuple[str, str]:
    """Methods x domains, mean ± std of the final held-out accuracy, the one best method in bold
    (none on a tie as written); one block per teacher setting and world (the dials and regime in
    which the runs differ, uniopd.analysis.cells.world_labels: runs of different dials are never
    pooled as seeds). GRPO, which asks no teacher, joins the block of its world that covers its
    domains; a method run from several experiment files in one block gets a row per file."""
    f = _final(runs).merge(runs.info[["run", "setting", "teachers"]], on="run")
    f = f[f.group.isin(groups)]
    f = with_world(f, runs.info)
    f = f.assign(row=_row_names(f))
    domains = sorted(f.domain.unique())
    blocks = [b for b in dict.fromkeys(zip(f.setting, f.world)) if b[0] != "no teacher"]
    md = [
        "| setting | method | seeds | " + " | ".join(domains) + " |",
        "|---|---|---|" + "---|" * len(domains),
    ]
    tex = [
        r"\begin{tabular}{ll" + "c" * (len(domains) + 1) + "}",
        r"\toprule",
        "setting & method & seeds & " + " & ".join(domains) + r" \\",
        r"\midrule",
    ]
    for teachers_of, world in blocks:
        setting = f"{teachers_of}; {world}" if world else teachers_of
        sub = f[(f.setting == teachers_of) & (f.world == world)]
        own = set(sub.domain)
        grpo = f[(f.setting == "no teacher") & (f.world == world)]
        if len(grpo) and set(grpo.domain) == own:  # GRPO on exactly these domains
            sub = pd.concat([sub, grpo])
        table = sub.groupby(["row", "domain"]).acc.agg(["mean", "std", "size"]).reset_index()
        best = {
            d: unique_best(dict(zip(x.row, x["mean"])), digits=1, scale=100)
            for d in domains
            if len(x := table[table.domain == d])
        }
        order = sub.drop_duplicates("row").sort_values(
            "group", key=lambda s: s.map(lambda g: list(groups).index(g)), kind="stable"
        )
        for g in order.row:
            t = table[table.row == g]
            cells_md, cells_tex = [], []
            for d in domains:
                x = t[t.domain == d]
                if x.empty:
                    cells_md.append("—")
                    cells_tex.append("--")
                    continue
                mean, std, n = (
                    float(x["mean"].iloc[0]),
                    float(x["std"].iloc[0]),
                    int(x["size"].iloc[0]),
                )
                text = pm(mean, std, n, digits=1, scale=100)
                bold = best.get(d) == g
                cells_md.append(f"**{text}**" if bold else text)
                cells_tex.append((r"\textbf{%s}" if bold else "%s") % text.replace("±", r"$\pm$"))
            n = int(t["size"].max())
            md.append(f"| {setting} | {g} | {n} | " + " | ".join(cells_md) + " |")
            tex.append(f"{setting} & {g} & {n} & " + " & ".join(cells_tex) + r" \\")
        refs = json.loads(sub[sub.setting == teachers_of].teachers.iloc[0])
        accs = [teacher_accuracy(teachers, refs, d) if d in own else None for d in domains]
        if any(a is not None for a in accs):
            md.append(
                f"| {setting} | teacher | — | "
                + " | ".join(f"{100 * a:.1f}" if a is not None else "—" for a in accs)
                + " |"
            )
            tex.append(
                f"{setting} & teacher & -- & "
                + " & ".join(f"{100 * a:.1f}" if a is not None else "--" for a in accs)
                + r" \\"
            )
    tex += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(md) + "\n", "\n".join(tex).replace("<-", r"$\leftarrow$") + "\n"


def ablation_latex(rows: list[dict], teachers: dict[str, float]) -> str:
    domains = _domains(rows)
    out = [
        r"\begin{tabular}{ll" + "c" * (len(domains) + 1) + "}",
        r"\toprule",
        "experiment & method & " + " & ".join(domains) + r" & order cons. \\",
        r"\midrule",
    ]
    for r in rows:
        cells = [
            pm(*r[d][1:], digits=1, scale=100).replace("±", "$\\pm$") if d in r else "--"
            for d in domains
        ]
        ob = r.get("order_before")
        out.append(
            f"{r['experiment']} & {r['group']} & " + " & ".join(cells) + f" & {ob:.3f}" + r" \\"
            if ob is not None
            else f"{r['experiment']} & {r['group']} & " + " & ".join(cells) + r" & -- \\"
        )
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out).replace("_", r"\_") + "\n"
