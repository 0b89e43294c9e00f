"""The mirrors of a run directory (wandb, TensorBoard) and the scalars and panels they chart."""
