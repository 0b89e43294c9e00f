"""The balancing ratio study: final held-out accuracy against online balancing's ratio r (the
paper's correct-to-incorrect weight), with the runs that balance nothing as the baseline.

    python analysis/balance_ratio.py runs/study/online --out balance_ratio.png

Prints mean and sample std over seeds per ratio and domain, and draws them. `none`, the baseline,
is plain OPD without online balancing from the ratio runs' own world and regime: no GRPO, no
Uni-OPD or other recipe, no sweep trial (uniopd/analysis/cells.py, shared with `uniopd figures`).
One seed has no std (blank, n = 1). Reads run directories only (uniopd.analysis.runs).
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from uniopd.analysis.basis import basis_line  # noqa: E402
from uniopd.analysis.cells import online_ratio_cells  # noqa: E402
from uniopd.analysis.runs import load_runs  # noqa: E402
from uniopd.analysis.study_data import final_evals  # noqa: E402


def table(roots: list[str]):
    """(per domain and ratio: mean, std, n; the line saying what it rests on), or None when the
    runs hold no ratio comparison."""
    runs = load_runs(roots)
    info = online_ratio_cells(runs.info, sweeps=False)
    if info.empty:
        return None
    info = info.assign(
        ratio=info.online_ratio.map(lambda r: "none" if r != r or r is None else f"{r:g}")
    )
    last = final_evals(runs)
    df = last[["run", "domain", "acc"]].merge(info[["run", "ratio", "seed"]], on="run")
    out = df.groupby(["domain", "ratio"]).acc.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].where(out.n > 1)  # one seed: no spread to show
    return out, basis_line(runs, info.run)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories or folders of them")
    ap.add_argument("--out", default="balance_ratio.png")
    args = ap.parse_args(argv)
    found = table(args.runs)
    if found is None:
        print(f"no finished runs of the ratio study in {', '.join(args.runs)}", file=sys.stderr)
        return 2
    df, rests_on = found
    print(df.to_string(index=False, na_rep=""))
    print(rests_on)
    grid = sns.catplot(data=df, x="ratio", y="mean", col="domain", kind="bar", height=3)
    grid.set_axis_labels("online balancing ratio r", "final held-out accuracy (mean)")
    grid.savefig(args.out, dpi=120)
    plt.close("all")
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
