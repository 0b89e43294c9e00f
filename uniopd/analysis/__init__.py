"""Analysis: run directories (and sweeps) -> DataFrames -> the paper's figures and tables.

Reads only what runs wrote. Runs with missing or partial logs are reported by name and left out
of aggregates (`Runs.skipped`), never crash a figure and never silently bias a mean.
"""

from uniopd.analysis.runs import Runs, load_runs

__all__ = ["Runs", "load_runs"]
