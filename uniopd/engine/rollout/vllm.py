"""`rollout.engine: vllm`: a colocated vLLM engine (`pip install 'uniopd[gpu]'`) on the process's
GPU, next to the training process. vLLM does not install on the project's machines: the calls below
were read from vLLM 0.30.0's source (VLLM_VERSION, the `gpu` extra's pin; another version is
refused at planning time, before any model loads), and tests/engines/test_vllm_engine.py runs them
against a stand-in written from the same source.

- `LLM(model=<the student's folder>, dtype=<the rollout precision>, gpu_memory_utilization,
  enable_sleep_mode=True, logprobs_mode="raw_logprobs", seed)` (vllm/entrypoints/llm.py; the
  keywords beyond its own go to vllm/engine/arg_utils.py `EngineArgs`), with
  `VLLM_ENABLE_V1_MULTIPROCESSING=0` so that the engine lives in this process and its model takes
  weights directly. The dtype is the rollout precision, bfloat16 under bf16-mixed: the student's
  float32 master weights are the optimizer's business, not the sampler's.
- With several processes, `distributed_executor_backend="external_launcher"` with RANK, LOCAL_RANK
  and WORLD_SIZE set from the run's processes (TRL's and verl's colocate mode): one engine per
  process, on that process's GPU (vllm/v1/executor/uniproc_executor.py,
  ExecutorWithExternalLauncher). Without it every process's engine takes local rank 0 from the
  plain "cuda" device and lands on cuda:0.
- `SamplingParams(n=1, temperature, top_p, top_k (0 = off), max_tokens, stop_token_ids,
  logprobs=0, seed)`, one seed per row: logprobs=0 returns the sampled token's log-prob, raw
  (before temperature and truncation) with `logprobs_mode="raw_logprobs"`.
- Sleep and wake follow vLLM's state (vllm/v1/executor/abstract.py): `sleep(level=1)` moves the
  weights to the CPU and drops the KV cache, and sets `is_sleeping` with sleeping tags {weights,
  kv_cache}; `wake_up(tags)` removes the tags it is given and clears `is_sleeping` only when none
  is left, and `sleep()` while `is_sleeping` does nothing but log a warning. So the engine never
  wakes halfway and sleeps again: a policy update that comes while it sleeps is pushed when it
  wakes, as TRL does: `torch.cuda.empty_cache()` (torch's cached blocks are free to the trainer,
  not to vLLM's pool), `wake_up(tags=["weights"])`, the student's state dict to the model's
  `load_weights`, then `wake_up(tags=["kv_cache"])`.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence

import torch

from uniopd.engine.rollout.base import (
    ENGINES,
    INSTALL_HINT,
    Generated,
    RolloutEngine,
    cut_at_stop,
)
from uniopd.engine.sampling import SamplingSettings

VLLM_VERSION = "0.30.0"  # the release this engine was read from; the `gpu` extra pins it


def version_problem() -> str | None:
    """Why the installed vLLM is not the one this engine was written against (None: it is, or
    none is installed, which RolloutEngine.problems reports). Read from the package metadata:
    importing vLLM takes seconds and is not needed to know."""
    try:
        found = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return None
    if found == VLLM_VERSION:
        return None
    return f"vllm {found} is installed; uniopd needs {VLLM_VERSION} ({INSTALL_HINT})"


@ENGINES.register("vllm")
class VLLMEngine(RolloutEngine):
    """Colocated vLLM with sleep mode; weights pushed after every policy update (GPU only,
    pip install 'uniopd[gpu]')."""

    requires = ("vllm",)

    @classmethod
    def problems(cls, *, sharded: bool, lora: bool = False, images: bool = False) -> list[str]:
        out = super().problems(sharded=sharded, lora=lora, images=images)
        version = version_problem()
        if version:
            out.append(version)
        if lora:  # its state dict holds adapter names vLLM's model does not know
            out.append("does not take a LoRA student's weights yet (student.lora): use hf")
        return out

    def __init__(self, model, tokenizer, options=None):
        super().__init__(model, tokenizer, options)
        version = version_problem()
        if version:  # the planner refuses it first; this is for an engine made by hand
            raise RuntimeError(f"rollout.engine = vllm: {version}")
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine in this process
        dist = self.options.dist
        launcher = {}
        if dist.active:  # one engine per process, each on its own GPU
            os.environ.update(
                RANK=str(dist.rank), LOCAL_RANK=str(dist.local_rank), WORLD_SIZE=str(dist.world)
            )
            launcher["distributed_executor_backend"] = "external_launcher"
        from vllm import LLM

        dtype = self.options.dtype or next(model.parameters()).dtype
        torch.cuda.empty_cache()  # vLLM sizes its pool from the memory free now
        self.llm = LLM(
            model=str(model.name_or_path),
            tokenizer=str(model.name_or_path),
            dtype=str(dtype).removeprefix("torch."),
            gpu_memory_utilization=self.options.gpu_memory_utilization,
            enable_sleep_mode=True,
            logprobs_mode="raw_logprobs",
            seed=self.options.seed,
            **launcher,
        )
        self.asleep = False
        self.stale = False  # a policy update came while asleep: pushed on waking
        self.update_weights(model)  # a resumed student differs from the folder's weights

    def _vllm_model(self):
        engine = self.llm.llm_engine
        return engine.model_executor.driver_worker.worker.model_runner.model

    def update_weights(self, model) -> None:
        self.model = model
        if self.asleep:  # waking the weights alone now would leave them on the GPU (docstring)
            self.stale = True
            return
        self._vllm_model().load_weights(weights=model.state_dict().items())

    def sleep(self) -> None:
        if not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if not self.asleep:
            return
        torch.cuda.empty_cache()
        self.llm.wake_up(tags=["weights"])
        if self.stale:
            self._vllm_model().load_weights(weights=self.model.state_dict().items())
            self.stale = False
        self.llm.wake_up(tags=["kv_cache"])
        self.asleep = False

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingSettings,
        vision: Sequence | None = None,  # always None: an image-text student is refused
    ) -> Generated:
        from vllm import SamplingParams

        self.wake()
        greedy = sampling.greedy
        # one seed per row: the G rows of a group hold the same prompt, and one seed for all
        # would sample them all alike
        first = int(torch.randint(0, 2**31 - 1 - len(prompt_ids), ()))
        settings = dict(
            n=1,
            temperature=0.0 if greedy else sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            top_k=0 if greedy else sampling.top_k,  # 0 = off (vLLM takes -1 too)
            min_p=0.0,
            repetition_penalty=1.0,
            max_tokens=sampling.max_new_tokens,
            stop_token_ids=list(sampling.stop_token_ids),
            ignore_eos=not sampling.stop_token_ids,  # stop tokens are ours alone
            logprobs=0,
            skip_special_tokens=False,
        )
        params = [SamplingParams(**settings, seed=first + i) for i in range(len(prompt_ids))]
        prompts = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        responses, logprobs = [], []
        for out in outputs:
            c = out.outputs[0]
            row = list(c.token_ids)
            n = cut_at_stop(row, sampling)
            responses.append(row[:n])
            logprobs.append([step[t].logprob for step, t in zip(c.logprobs[:n], row[:n])])
        return Generated(responses, logprobs)
