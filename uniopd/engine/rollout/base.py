"""The rollout engine interface and its registry.

An engine turns prompts (token ids) into sampled responses, with each sampled token's log-prob
under the model's raw distribution (log-softmax of the logits: no temperature, top-k or top-p;
what the trainer's pi_old is). The trainer builds one per run (`rollout.engine`), calls
`update_weights(model)` after each policy update and `sleep()` / `wake()` around the phases that
do not sample. A new engine is one file: subclass `RolloutEngine`, register it in `ENGINES`
(or through the `uniopd.engines` entry-point group).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from uniopd.engine.distributed import Dist
from uniopd.engine.sampling import SamplingSettings
from uniopd.engine.sequences import SequenceBatch, pack
from uniopd.registry import Registry

INSTALL_HINT = "pip install 'uniopd[gpu]'"


@dataclass
class Generated:
    """One response per prompt row: token ids (a stop token kept, no padding) and, when the
    engine gives them, the raw log-prob of each of those tokens."""

    responses: list[list[int]]
    logprobs: list[list[float]] | None = None


@dataclass(frozen=True)
class EngineOptions:
    max_batch_rows: int = 256  # hf: rows per generate call
    max_batch_tokens: int | None = None  # hf-paged: tokens per forward (None = transformers')
    kv_cache_tokens: int | None = None  # hf-paged: KV cache tokens (None = from free memory)
    kv_cache_memory_fraction: float | None = None  # hf-paged: of free memory (None = transformers')
    gpu_memory_utilization: float = 0.5  # vllm: share of the GPU its weights + KV cache take
    processes: int | None = None  # hf-static-procs: decoding processes (None = the CPUs free)
    seed: int = 0
    # the rollout precision (bf16-mixed: bfloat16), for an engine that holds its own copy of the
    # weights (vllm); None = the student's parameters' dtype
    dtype: torch.dtype | None = None
    dist: Dist = field(default_factory=Dist)  # this process among the run's (vllm: its GPU)


class RolloutEngine:
    """Samples with the student. `requires`: modules that must be importable; `sharded_ok`: can
    sample with an FSDP-sharded student; `images_ok`: can sample with an image-text student
    (prompts with pixel inputs)."""

    requires: ClassVar[tuple[str, ...]] = ()
    sharded_ok: ClassVar[bool] = False
    images_ok: ClassVar[bool] = False

    def __init__(self, model, tokenizer, options: EngineOptions | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.options = options or EngineOptions()

    @classmethod
    def problems(cls, *, sharded: bool, lora: bool = False, images: bool = False) -> list[str]:
        """Why this engine cannot run here (not installed, a sharded student), checked at
        planning time before any model loads."""
        out = []
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            out.append(f"needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}")
        if sharded and not cls.sharded_ok:
            out.append(
                "cannot sample with an FSDP-sharded student (train.fsdp: true): its weights are "
                "split over the processes; use rollout.engine: hf"
            )
        if images and not cls.images_ok:
            out.append(
                "cannot sample with an image-text student (this engine takes token ids only); "
                "use rollout.engine: hf"
            )
        return out

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingSettings,
        vision: Sequence | None = None,
    ) -> Generated:
        """`vision`: each prompt's pixel inputs (uniopd.engine.vision), for an image-text
        student; None for a text student."""
        raise NotImplementedError

    def update_weights(self, model) -> None:
        """The student's new weights, after an optimizer step (no-op: sampling with the live
        module)."""

    def sleep(self) -> None:
        """Free what sampling holds while the other phases run (no-op by default)."""

    def wake(self) -> None:
        """Undo `sleep` before sampling again."""


ENGINES: Registry[type[RolloutEngine]] = Registry(
    "rollout engine",
    "uniopd.engines",
    builtins=(
        "uniopd.engine.rollout.hf",
        "uniopd.engine.rollout.hf_paged",
        "uniopd.engine.rollout.hf_static",
        "uniopd.engine.rollout.hf_static_procs",
        "uniopd.engine.rollout.vllm",
    ),
)


def engine_problems(
    name: str, *, sharded: bool, lora: bool = False, images: bool = False
) -> list[str]:
    """Reasons `rollout.engine: name` cannot run (an unknown name included), for the planner."""
    if name not in ENGINES:
        return [
            f"unknown rollout engine {name!r}; known: {', '.join(ENGINES.names())} "
            f"(vllm needs {INSTALL_HINT})"
        ]
    return ENGINES.get(name).problems(sharded=sharded, lora=lora, images=images)


def make_engine(name: str, model, tokenizer, options: EngineOptions | None = None) -> RolloutEngine:
    return ENGINES.get(name)(model, tokenizer, options)


def logprobs_tensor(gen: Generated, width: int) -> torch.Tensor | None:
    """The engine's log-probs as `[N, width]`, 0 on padding (the packed batch's layout)."""
    if gen.logprobs is None:
        return None
    out = torch.zeros((len(gen.logprobs), width))
    for i, row in enumerate(gen.logprobs):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return out


def rollout_batch(
    engine: RolloutEngine,
    prompt_ids: Sequence[Sequence[int]],
    group_size: int,
    sampling: SamplingSettings,
    vision: Sequence | None = None,
) -> tuple[SequenceBatch, torch.Tensor | None]:
    """G samples of each prompt, rows prompt-major (rows i*G .. i*G+G-1 share prompt i), and the
    engine's log-probs of the sampled tokens `[N, T]` (None if it gives none). `vision`: each
    prompt's pixel inputs (image-text student)."""
    repeated = [p for p in prompt_ids for _ in range(group_size)]
    seen = None if vision is None else [v for v in vision for _ in range(group_size)]
    gen = (
        engine.generate(repeated, sampling)
        if seen is None
        else engine.generate(repeated, sampling, seen)
    )
    batch = pack(repeated, gen.responses, sampling.pad_token_id, seen)
    return batch, logprobs_tensor(gen, batch.response_mask_N_T.shape[1])


def cut_at_stop(row: list[int], sampling: SamplingSettings) -> int:
    """Length of a generated row: through its first stop token, else without trailing padding
    (padding is what a finished row of a batch gets while the others continue)."""
    for j, tok in enumerate(row):
        if tok in sampling.stop_token_ids:
            return j + 1
    n = len(row)
    while n and row[n - 1] == sampling.pad_token_id:
        n -= 1
    return n
