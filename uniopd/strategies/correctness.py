"""Online correctness-aware balancing (METHOD 3.2): the majority outcome masked down to ratio r."""

from __future__ import annotations

from uniopd.algorithms import online_balance
from uniopd.strategies import ONLINE_BALANCERS
from uniopd.strategies.base import OnlineBalancer


@ONLINE_BALANCERS.register("correctness")
class Correctness(OnlineBalancer):
    """Mask random rollouts of the majority outcome until correct : incorrect is `ratio`."""

    def keep(self, correct_N, group_ids_N, generator):
        return online_balance(
            correct_N, group_ids_N, self.section.ratio, self.section.scope, generator=generator
        )
