"""Optuna sweeps over experiment fields: the sweep file, the study, the workers."""

from uniopd.sweep.run import run_sweep
from uniopd.sweep.spec import load_sweep

__all__ = ["load_sweep", "run_sweep"]
