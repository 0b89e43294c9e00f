"""The study's compact data (uniopd/analysis/compact.py): run tables into one parquet file and
back, the claims read from it equal to the claims read from the runs, and the command's refusals."""

import numpy as np
import pandas as pd
from test_analysis_study import cell, runs_of

from uniopd.analysis.claims import claims_rows
from uniopd.analysis.compact import main as compact_main
from uniopd.analysis.compact import read_compact, write_compact
from uniopd.analysis.runs import load_runs


def test_the_file_gives_back_the_runs_and_their_claims(tmp_path):
    runs = runs_of(
        cell("study-order-opd-f0", [0.50, 0.55, 0.52], teacher_flaw=0.0, order=0.9),
        cell("study-order-uniopd-f0", [0.56, 0.58, 0.57], teacher_flaw=0.0),
        cell("study-order-opd-f0.6", [0.40, 0.42, 0.41], teacher_flaw=0.6, order=0.5),
        cell("study-order-uniopd-f0.6", [0.55, 0.58, 0.56], teacher_flaw=0.6),
    )
    size = write_compact(runs, tmp_path / "study.parquet")
    back = read_compact(tmp_path / "study.parquet")
    assert size < 40_000  # 12 runs of 30 steps
    pd.testing.assert_frame_equal(back.info, runs.info, check_dtype=False)
    for mine, theirs in ((back.metrics, runs.metrics), (back.evals, runs.evals)):
        assert sorted(mine.columns) == sorted(theirs.columns) and len(mine) == len(theirs)
        a, b = mine.sort_values(["run", "step"]), theirs.sort_values(["run", "step"])
        for col in a.select_dtypes("number").columns:  # float32 in the file
            np.testing.assert_allclose(a[col], b[col], rtol=1e-6, equal_nan=True)
    assert claims_rows(back, {}) == claims_rows(runs, {})
    # a parquet file that is not a study's is left out with the reason, not a crash
    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "other.parquet")
    other = load_runs([tmp_path / "other.parquet"])
    assert other.info.empty and "not a study's compact data" in other.skipped[0][1]
    assert compact_main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.parquet")]) == 2
