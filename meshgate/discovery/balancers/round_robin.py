"""Round-robin: each pick takes the next instance in list order."""

from __future__ import annotations

from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer


class RoundRobinBalancer(LoadBalancer):
    """Cycles through the instances in the order given. O(1), nothing cached.

    When the list changes length the cycle carries on from the same counter,
    so no instance is favoured by a change.

    >>> balancer = RoundRobinBalancer()
    >>> instances = [ServiceInstance(id=i, name="svc", host="h", port=1) for i in "abc"]
    >>> [balancer.pick(instances).id for _ in range(4)]
    ['a', 'b', 'c', 'a']
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        if not instances:
            return None
        position = self._next % len(instances)
        self._next = position + 1
        return instances[position]
