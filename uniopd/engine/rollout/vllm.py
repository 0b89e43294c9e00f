"""`rollout.engine: vllm`: a colocated vLLM engine (`pip install 'uniopd[gpu]'`) on the student's
GPU, next to the training process. Not exercised by the project's tests (vLLM does not install
here); written against vLLM's documented API:

- `LLM(model=<the student's folder>, gpu_memory_utilization=..., enable_sleep_mode=True,
  logprobs_mode="raw_logprobs")`, with `VLLM_ENABLE_V1_MULTIPROCESSING=0` so the engine lives in
  this process (TRL's colocate mode does the same) and its model can take weights directly;
- `SamplingParams(n=1, temperature, top_p, top_k (-1 = off), max_tokens, stop_token_ids,
  logprobs=0, seed)`, one seed per row: logprobs=0 returns the sampled token's log-prob, raw (before temperature
  and truncation) with `logprobs_mode="raw_logprobs"`;
- after each policy update the student's state dict goes to vLLM's model `load_weights`;
- `llm.sleep(level=1)` (weights to CPU, KV cache dropped) while the teachers and the update run,
  `llm.wake_up()` before sampling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from uniopd.engine.rollout.base import ENGINES, Generated, RolloutEngine, cut_at_stop
from uniopd.engine.sampling import SamplingSettings


@ENGINES.register("vllm")
class VLLMEngine(RolloutEngine):
    """Colocated vLLM with sleep mode; weights pushed after every policy update (GPU only,
    pip install 'uniopd[gpu]')."""

    requires = ("vllm",)

    @classmethod
    def problems(cls, *, sharded: bool, lora: bool = False, images: bool = False) -> list[str]:
        out = super().problems(sharded=sharded, lora=lora, images=images)
        if lora:  # its state dict holds adapter names vLLM's model does not know
            out.append("does not take a LoRA student's weights yet (student.lora): use hf")
        return out

    def __init__(self, model, tokenizer, options=None):
        super().__init__(model, tokenizer, options)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        dtype = next(model.parameters()).dtype
        self.llm = LLM(
            model=str(model.name_or_path),
            tokenizer=str(model.name_or_path),
            dtype=str(dtype).removeprefix("torch."),
            gpu_memory_utilization=self.options.gpu_memory_utilization,
            enable_sleep_mode=True,
            logprobs_mode="raw_logprobs",
            seed=self.options.seed,
        )
        self.asleep = False
        self.update_weights(model)  # a resumed or LoRA student differs from the folder's weights

    def _vllm_model(self):
        engine = self.llm.llm_engine
        return engine.model_executor.driver_worker.worker.model_runner.model

    def update_weights(self, model) -> None:
        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        self._vllm_model().load_weights(weights=model.state_dict().items())
        if self.asleep:
            self.llm.sleep(level=1)

    def sleep(self) -> None:
        if not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], sampling: SamplingSettings
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
            top_k=-1 if greedy or sampling.top_k == 0 else sampling.top_k,
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
