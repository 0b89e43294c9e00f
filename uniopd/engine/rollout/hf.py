"""`rollout.engine: hf` (default): HF `generate` on left-padded batches of rows, with the live
student module (nothing to push after an optimizer step). Works with an FSDP-sharded student:
every forward is then a collective, so all processes decode until all are done (`synced_gpus`).

Log-probs of the sampled tokens under the raw distribution come from a forward hook on the output
head, which keeps the current step's last-position logits (a view of the model's own output) and
their log-sum-exp `[rows]`; a stopping criterion, called once the step's token is appended, reads
that token's log-prob. Nothing `[rows, T, vocab]` is kept, and sampling is untouched (the hook
reads, the criterion never stops a row).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from uniopd.engine.fsdp import hold_gathered, is_sharded
from uniopd.engine.rollout.base import ENGINES, Generated, RolloutEngine, cut_at_stop
from uniopd.engine.sampling import SamplingSettings
from uniopd.engine.vision import model_inputs


def generation_config(s: SamplingSettings) -> GenerationConfig:
    """Every value `generate` (and `generate_batch`, hf-paged) samples with, set explicitly: an
    unset one would be filled from the checkpoint's generation_config.json or transformers'
    defaults (top_k = 50)."""
    sample = not s.greedy
    return GenerationConfig(
        do_sample=sample,
        temperature=s.temperature if sample else None,
        top_p=s.top_p if sample else None,
        top_k=s.top_k if sample else None,  # 0 = off, said explicitly
        max_new_tokens=s.max_new_tokens,
        eos_token_id=list(s.stop_token_ids) or None,
        pad_token_id=s.pad_token_id,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        suppress_tokens=list(s.banned_token_ids) or None,
    )


class _SampledLogprobs(StoppingCriteria):
    """Collects log p(token) under the raw logits of each decoding step (see the module doc)."""

    def __init__(self, head: torch.nn.Module):
        self.last: torch.Tensor | None = None
        self.lse: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []
        self.handle = head.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self.last = output[:, -1]
        self.lse = torch.logsumexp(self.last.float(), dim=-1)

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        assert self.last is not None and self.lse is not None
        token = input_ids[:, -1:]
        # kept on the device: a copy to the host every decoding step would stall a GPU
        self.steps.append(self.last.gather(1, token).squeeze(1).float() - self.lse)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    def close(self) -> torch.Tensor:
        self.handle.remove()
        self.last = self.lse = None
        return torch.stack(self.steps, 1).cpu() if self.steps else torch.zeros((0, 0))


@ENGINES.register("hf")
class HFEngine(RolloutEngine):
    """HF generate on padded batches of rollout.max_batch_rows rows, with the live student
    (default; works with an FSDP-sharded student)."""

    sharded_ok = True
    images_ok = True

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingSettings,
        vision: Sequence | None = None,
    ) -> Generated:
        model, pad = self.model, sampling.pad_token_id
        gen = generation_config(sampling)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        hold_gathered(model, True)  # a sharded student: one gather per call, not per token
        responses: list[list[int]] = []
        logprobs: list[list[float]] = []
        step = self.options.max_batch_rows
        try:
            for start in range(0, len(prompt_ids), step):
                chunk = prompt_ids[start : start + step]
                width = max(len(p) for p in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                attn = torch.zeros((len(chunk), width), dtype=torch.long)
                for i, p in enumerate(chunk):
                    ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
                    attn[i, width - len(p) :] = 1
                scorer = _SampledLogprobs(model.get_output_embeddings())
                ids, attn = ids.to(device), attn.to(device)
                pixels = model_inputs(
                    model, ids, None if vision is None else vision[start : start + step]
                )
                try:
                    generated = model.generate(
                        input_ids=ids,
                        attention_mask=attn,
                        **{k: v.to(device) for k, v in pixels.items()},
                        generation_config=gen,
                        stopping_criteria=StoppingCriteriaList([scorer]),
                        # a sharded model's every forward is a collective: all step until all end
                        synced_gpus=is_sharded(model),
                    )
                finally:
                    logp = scorer.close()
                for i, row in enumerate(generated[:, width:].tolist()):
                    n = cut_at_stop(row, sampling)
                    responses.append(row[:n])
                    logprobs.append(logp[i, :n].tolist())
        finally:
            hold_gathered(model, False)
            model.train(was_training)
        return Generated(responses, logprobs)
