"""`PromptSampler`: the B prompts of each training step, epoch by epoch, resumable exactly.

Each epoch is a fresh permutation drawn from `random.Random(f"{seed}/{epoch}")`, so an epoch's
order depends on the seed and the epoch number only, never on how many batches came before.
Within an epoch every problem comes once. A batch that runs past the end of an epoch finishes
with the head of the next one; the problems already in that batch are moved to the back of the new
epoch, so no batch holds the same problem twice unless it is larger than the dataset. Because that
move depends on the batch, the current epoch's order is part of `state_dict()`.

Problems are sampled by position: an offline-balanced list that repeats a problem on purpose
(METHOD 3.1) keeps its repeats.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from uniopd.data.errors import DataError
from uniopd.tasks.problem import Problem


def steps_for_data_epochs(data_epochs: int, n_items: int, prompts_per_batch: int) -> int:
    """Optimizer steps for `data_epochs` passes over `n_items` training items, one batch of
    `prompts_per_batch` per step. The release's count (miles, ray/placement_group.py:176-180 and
    ray/rollout.py:132-134 in github WenjinHou/Uni-OPD): whole batches per pass, times the passes;
    here at least one step per pass, for a set smaller than one batch."""
    return max(1, n_items // prompts_per_batch) * data_epochs


class PromptSampler:
    def __init__(self, problems: Sequence[Problem], seed: int):
        if not problems:
            raise DataError("PromptSampler: no problems to sample from")
        self.problems = tuple(problems)
        self.seed = int(seed)
        self.epoch = 0  # the epoch the next problem comes from, unless this one is used up
        self.position = 0  # how many problems of this epoch have been handed out
        self._order = self._permutation(0)

    def __len__(self) -> int:
        return len(self.problems)

    def next_batch(self, n: int) -> list[Problem]:
        if n < 1:
            raise ValueError(f"batch size must be at least 1, got {n}")
        picked: list[int] = []
        while len(picked) < n:
            if self.position == len(self._order):
                self._start_epoch(avoid=set(picked))
            take = min(n - len(picked), len(self._order) - self.position)
            picked += self._order[self.position : self.position + take]
            self.position += take
        return [self.problems[i] for i in picked]

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        random.Random(f"{self.seed}/{epoch}").shuffle(order)
        return order

    def _start_epoch(self, avoid: set[int]) -> None:
        self.epoch += 1
        self.position = 0
        order = self._permutation(self.epoch)
        # Stable partition: the epoch stays a permutation, only the batch's problems move back.
        self._order = [i for i in order if i not in avoid] + [i for i in order if i in avoid]

    def state_dict(self) -> dict:
        """Plain JSON-able state; `load_state_dict` on a sampler over the same problems resumes it."""
        return {
            "seed": self.seed,
            "size": len(self.problems),
            "epoch": self.epoch,
            "position": self.position,
            "order": list(self._order),
        }

    def load_state_dict(self, state: dict) -> None:
        size = len(self.problems)
        if state["size"] != size or state["seed"] != self.seed:
            raise ValueError(
                f"sampler state is for {state['size']} problems with seed "
                f"{state['seed']}, this sampler has {size} with seed {self.seed}"
            )
        order = [int(i) for i in state["order"]]
        if sorted(order) != list(range(size)) or not 0 <= state["position"] <= size:
            raise ValueError(
                "sampler state is corrupt: 'order' is not a permutation of the "
                "problems or 'position' is out of range"
            )
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), order
