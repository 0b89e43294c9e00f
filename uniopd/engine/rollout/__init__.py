"""Rollout engines behind one interface (`rollout.engine`): `hf` (default), `hf-static`,
`hf-static-procs`, `hf-paged`, `vllm`, or a plugin's. See base.py for the interface; docs/scale.md for what each is for."""

from uniopd.engine.rollout.base import (
    ENGINES,
    EngineOptions,
    Generated,
    RolloutEngine,
    engine_problems,
    make_engine,
    rollout_batch,
)

__all__ = [
    "ENGINES",
    "EngineOptions",
    "Generated",
    "RolloutEngine",
    "engine_problems",
    "make_engine",
    "rollout_batch",
]
