"""Does Uni-OPD's gain follow the teacher's order consistency? Per run: the mean pairwise order
consistency before (and after) calibration, and the final held-out accuracy per domain.

    python analysis/order_vs_accuracy.py runs/study --out order_vs_accuracy.png

Prints the table (one row per run and domain) and draws accuracy against order consistency before
calibration, one colour per method. Reads run directories only (uniopd.analysis.runs).
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
    m = runs.metrics
    cols = [c for c in ("order/consistency_before", "order/consistency_after") if c in m]
    order = m.groupby("run")[cols].mean().reset_index() if cols else m[["run"]].drop_duplicates()
    last = final_evals(runs)
    out = last[["run", "domain", "acc"]].merge(order, on="run", how="left")
    return out.merge(runs.info[["run", "group", "setting", "seed"]], on="run")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories or folders of them")
    ap.add_argument("--out", default="order_vs_accuracy.png")
    args = ap.parse_args(argv)
    df = table(args.runs)
    if df is None:
        print(f"no finished runs in {', '.join(args.runs)}", file=sys.stderr)
        return 2
    print(df.sort_values(["domain", "group", "seed"]).to_string(index=False))
    if "order/consistency_before" in df:
        grid = sns.relplot(
            data=df, x="order/consistency_before", y="acc", hue="group", col="domain", height=3
        )
        grid.set_axis_labels("order consistency before calibration", "final held-out accuracy")
        grid.savefig(args.out, dpi=120)
        plt.close("all")
        print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
