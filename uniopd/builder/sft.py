"""Supervised warm start: next-token cross-entropy on reference responses, prompt tokens masked.

The paper's experts start as SFT models before domain RL; the tiny world's do too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from uniopd.engine.logprobs import response_logprobs
from uniopd.engine.prompts import PromptFormat
from uniopd.engine.sequences import encode_prompts, pack
from uniopd.engine.vision import encode_inputs
from uniopd.tasks.problem import Problem


def warmup_stable_decay(step: int, steps: int, warmup: float = 0.05, decay: float = 0.2) -> float:
    """Learning-rate factor: linear warm-up over the first 5 % of steps, flat, then linear decay to
    zero over the last 20 %. The tiny models learn to copy each event's number from the story in a
    sudden transition; under a cosine schedule the learning rate was already low when it came, and
    whether it came before the end flipped with the seed or the CPU's float rounding (math expert,
    800 steps: greedy 0.60-0.96 over three seeds with cosine, 0.94-1.00 over four with this;
    docs/journal.md 2026-11-27)."""
    warm = max(1, int(steps * warmup))
    decay_from = int(steps * (1 - decay))
    if step < warm:
        return (step + 1) / warm
    if step < decay_from:
        return 1.0
    return max(0.0, (steps - step) / max(1, steps - decay_from))


def supervised_warm_start(
    model,
    tokenizer,
    problems: Sequence[Problem],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    desc: str = "sft",
    on_step=None,
    stop_after: int | None = None,
    processor=None,
    batch_by_domain: bool = False,
) -> list[float]:
    """Train `model` in place for `steps` steps; returns the loss curve.

    `on_step()`, when given, is called after every step instead of drawing a progress bar (the
    world builder draws one bar per model for builds running in parallel processes).
    `stop_after`: only the first steps of that run, same schedule (a rebuild's check against the
    recorded curve of a shipped model). `processor`: an image-text model's, for problems with
    images. `batch_by_domain`: each batch from one domain, drawn in proportion to the domains'
    sizes (a warm start on pictures with some math and code replayed: a batch padded to its
    longest row would otherwise pay for a code row in nearly every batch of pictures)."""
    rng = random.Random(seed)
    vision = None
    if processor is None:
        prompt_ids = encode_prompts(tokenizer, [p.prompt for p in problems])
    else:
        prompt_ids, vision = encode_inputs(tokenizer, processor, problems, PromptFormat())
    response_ids = [
        tokenizer(p.solution, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for p in problems
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_stable_decay(s, steps))
    model.train()
    losses = []
    pools = {"": list(range(len(problems)))}
    if batch_by_domain:
        pools = {}
        for i, p in enumerate(problems):
            pools.setdefault(p.domain, []).append(i)
    domains, sizes = list(pools), [len(v) for v in pools.values()]
    orders: dict[str, list[int]] = {d: [] for d in domains}
    run = steps if stop_after is None else min(steps, stop_after)
    for _ in tqdm(range(run), desc=desc, leave=False, disable=on_step is not None):
        domain = domains[0] if len(domains) == 1 else rng.choices(domains, sizes)[0]
        pool, order = pools[domain], orders[domain]
        if len(order) < batch_size:
            order += rng.sample(pool, len(pool))
        idx, orders[domain] = order[:batch_size], order[batch_size:]
        batch = pack(
            [prompt_ids[i] for i in idx],
            [response_ids[i] for i in idx],
            tokenizer.pad_token_id,
            None if vision is None else [vision[i] for i in idx],
        )
        logp = response_logprobs(model, batch)
        mask = batch.response_mask_N_T
        loss = -(logp * mask).sum() / mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step()
    model.eval()
    return losses
