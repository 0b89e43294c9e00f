"""The ablation table from logged runs: held-out accuracy per domain (mean ± std over seeds),
steps to reach the teacher's accuracy, and order consistency before calibration.

    python analysis/study_table.py runs --teacher math=runs/teacher-math-eval.json \\
        --teacher code=runs/teacher-code-eval.json --out paper_figures/ablation_table.md

Reads run directories only (config.yaml, eval.jsonl, metrics.jsonl); runs named `<name>-s<seed>`
are one row. A teacher file is the JSON `uniopd eval ... --out FILE` writes for that teacher,
evaluated with the same eval settings as the runs.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd
import yaml


def load_runs(root: Path) -> pd.DataFrame:
    rows = []
    for run in sorted(p for p in root.iterdir() if (p / "eval.jsonl").exists()):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        evals = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()] \
            if (run / "metrics.jsonl").exists() else []
        if not evals or evals[-1]["step"] != cfg["train"]["steps"]:
            continue  # unfinished run
        before = [m["order/consistency_before"] for m in metrics
                  if m.get("order/consistency_before") is not None]
        domains = [d for d, v in evals[-1].items() if isinstance(v, dict)]
        rows.append({"experiment": re.sub(r"-s\d+$", "", cfg["name"]), "seed": cfg["seed"],
                     "run": run.name, "description": cfg.get("description", ""),
                     "order_before": sum(before) / len(before) if before else None,
                     **{f"acc/{d}@0": evals[0][d]["acc"] for d in domains},
                     **{f"acc/{d}": evals[-1][d]["acc"] for d in domains},
                     **{f"curve/{d}": [(e["step"], e[d]["acc"]) for e in evals] for d in domains}})
    return pd.DataFrame(rows)


def steps_to_reach(curve: list, target: float) -> int | None:
    return next((step for step, acc in curve if acc >= target), None)


def table(runs: pd.DataFrame, teachers: dict[str, float]) -> str:
    domains = sorted(c.split("/")[1] for c in runs.columns if re.fullmatch(r"acc/[^@]+", c))
    head = ["experiment", "seeds"] + [f"{d} (start → end)" for d in domains]
    head += [f"steps to teacher {d}" for d in domains if d in teachers] + ["order consistency before cal."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, g in runs.groupby("experiment", sort=False):
        cells = [name, str(len(g))]
        for d in domains:
            end = g[f"acc/{d}"].dropna()
            start = g[f"acc/{d}@0"].dropna()
            cells.append(f"{start.mean():.3f} → {end.mean():.3f} ± {end.std(ddof=0):.3f}" if len(end) else "—")
        for d in domains:
            if d in teachers:
                reached = [steps_to_reach(c, teachers[d]) for c in g[f"curve/{d}"].dropna()]
                hits = [s for s in reached if s is not None]
                cells.append(f"{len(hits)}/{len(reached)} runs" + (f", mean {sum(hits) / len(hits):.0f}" if hits else ""))
        ob = g["order_before"].dropna()
        cells.append(f"{ob.mean():.3f}" if len(ob) else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder of run directories")
    ap.add_argument("--teacher", action="append", default=[],
                    help="domain=eval.json from `uniopd eval <teacher> --out`, or domain=<accuracy>")
    ap.add_argument("--only", nargs="*", help="experiment names to include, in this order")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    teachers = {}
    for spec in args.teacher:
        domain, _, value = spec.partition("=")
        try:
            teachers[domain] = float(value)
        except ValueError:
            teachers[domain] = json.loads(Path(value).read_text())["summary"][domain]["acc"]
    runs = load_runs(args.root)
    if runs.empty:
        raise SystemExit(f"no finished runs under {args.root}")
    if args.only:
        runs = runs[runs.experiment.isin(args.only)]
        runs = runs.set_index("experiment").loc[[n for n in args.only if n in set(runs.experiment)]].reset_index()
    text = table(runs, teachers)
    if teachers:
        text += "\nTeacher accuracy (same eval settings): " + ", ".join(f"{d} {a:.3f}" for d, a in teachers.items()) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
