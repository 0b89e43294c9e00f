"""The training loop (METHOD 5): `runner` readies it from a checked plan, `trainer` runs it step by
step, and each stage of a step has its own module (rollout_phase, scoring, update, records)."""
