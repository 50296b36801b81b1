"""Random: each pick is an independent uniform draw."""

from __future__ import annotations

import random
from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer


class RandomBalancer(LoadBalancer):
    """Picks uniformly at random. O(1), nothing cached.

    Pass `rng` (a seeded `random.Random`) to make the sequence repeatable.

    >>> balancer = RandomBalancer(rng=random.Random(7))
    >>> instances = [ServiceInstance(id=i, name="svc", host="h", port=1) for i in "abc"]
    >>> balancer.pick(instances).id in "abc"
    True
    """

    __slots__ = ("_rng",)

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        if not instances:
            return None
        return instances[self._rng.randrange(len(instances))]
