"""The balancing ratio study: final held-out accuracy against online balancing's ratio r (the
paper's correct-to-incorrect weight), with the runs that balance nothing as the baseline.

    python analysis/balance_ratio.py runs/study/online --out balance_ratio.png

Prints mean and sample std over seeds per ratio and domain (`none` = no online balancing), and
draws them. Reads run directories only (uniopd.analysis.runs).
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from uniopd.analysis.runs import load_runs  # noqa: E402
from uniopd.analysis.study_data import final_evals  # noqa: E402


def table(roots: list[str]):
    runs = load_runs(roots)
    if runs.info.empty:
        return None
    info = runs.info.copy()
    info["ratio"] = info.online_ratio.map(lambda r: "none" if r != r or r is None else f"{r:g}")
    last = final_evals(runs)
    df = last[["run", "domain", "acc"]].merge(info[["run", "ratio", "seed"]], on="run")
    return df.groupby(["domain", "ratio"]).acc.agg(["mean", "std", "count"]).reset_index()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories or folders of them")
    ap.add_argument("--out", default="balance_ratio.png")
    args = ap.parse_args(argv)
    df = table(args.runs)
    if df is None:
        print(f"no finished runs in {', '.join(args.runs)}", file=sys.stderr)
        return 2
    print(df.to_string(index=False))
    grid = sns.catplot(data=df, x="ratio", y="mean", col="domain", kind="bar", height=3)
    grid.set_axis_labels("online balancing ratio r", "final held-out accuracy (mean)")
    grid.savefig(args.out, dpi=120)
    plt.close("all")
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
