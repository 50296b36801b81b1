"""Smooth weighted round-robin, as nginx does it: over every cycle of
sum(weights) picks each instance is chosen exactly `weight` times, and the
picks of a heavy instance are spread out rather than bunched (weights 5, 1, 1
give a a b a c a a).

nginx keeps a running weight per instance and scans all of them on each pick.
Here instances that share a weight form one group: under nginx's rule the
members of a group are chosen in list order, one after the other, so a group
needs only a cursor and a count of finished rounds, and a pick scans groups,
not instances. Services rarely use more than a few distinct weights, so that
is O(1) in practice and O(n) only when every weight differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.snapshot import SnapshotCache


class _Group:
    """The instances of one weight, in list order."""

    __slots__ = ("cursor", "positions", "rounds", "weight")

    def __init__(self, weight: int, positions: list[int]) -> None:
        self.weight = weight
        self.positions = positions
        self.cursor = 0
        # Members before `cursor` have been chosen `rounds + 1` times, the rest `rounds` times.
        self.rounds = 0


class _Schedule:
    __slots__ = ("groups", "step", "total")

    def __init__(self, instances: Sequence[ServiceInstance]) -> None:
        weights = _integer_weights([instance.weight for instance in instances])
        positions_by_weight: dict[int, list[int]] = {}
        for position, weight in enumerate(weights):
            positions_by_weight.setdefault(weight, []).append(position)
        self.groups = [_Group(weight, members) for weight, members in positions_by_weight.items()]
        self.total = sum(weights)
        self.step = 0

    def next_position(self) -> int:
        # nginx's running weight of an instance at step t is t*w - total*k, where
        # k counts its earlier picks; the highest wins and ties go to the earlier
        # instance. Within a group the highest is the member under the cursor.
        self.step += 1
        chosen = self.groups[0]
        chosen_value = self.step * chosen.weight - self.total * chosen.rounds
        chosen_position = chosen.positions[chosen.cursor]
        for group in self.groups:
            value = self.step * group.weight - self.total * group.rounds
            position = group.positions[group.cursor]
            if value > chosen_value or (value == chosen_value and position < chosen_position):
                chosen, chosen_value, chosen_position = group, value, position
        chosen.cursor += 1
        if chosen.cursor == len(chosen.positions):
            chosen.cursor = 0
            chosen.rounds += 1
        return chosen_position


def _integer_weights(weights: list[float]) -> list[int]:
    """The same proportions as whole numbers, smallest possible, so that the
    running weights are exact however long the balancer runs.

    Every float is a fraction over a power of two, so scaling by the largest
    such denominator is exact; dividing by the gcd changes no pick (the rule
    compares weights only with each other) and keeps the numbers small.
    `ServiceInstance.weight` lets infinity through; it counts as 1, like any
    other weight that is not a usable number.
    """
    weights = [weight if math.isfinite(weight) else 1.0 for weight in weights]
    scale = max(weight.as_integer_ratio()[1] for weight in weights)
    scaled = [int(weight * scale) for weight in weights]
    divisor = math.gcd(*scaled)
    return [weight // divisor for weight in scaled]


def _weight_key(instance: ServiceInstance) -> tuple[str, object]:
    # The raw metadata value, not `instance.weight`: the key is computed for
    # every new list, and parsing each weight there would cost more than the pick.
    return instance.id, instance.metadata.get("weight")


class WeightedRoundRobinBalancer(LoadBalancer):
    """Smooth weighted round-robin by `instance.weight` (`metadata["weight"]`, 1 by default).

    A change of ids or weights starts a new cycle from a clean state; a
    refresh that changes neither keeps the cycle going. The cycles of the
    last four sets are kept, so a retry that picks among the instances not
    yet tried leaves the cycle of the full set where it was (and a set seen
    again lately carries on with its own).

    >>> balancer = WeightedRoundRobinBalancer()
    >>> instances = (
    ...     ServiceInstance(id="a", name="svc", host="h", port=1, metadata={"weight": 5}),
    ...     ServiceInstance(id="b", name="svc", host="h", port=2),
    ...     ServiceInstance(id="c", name="svc", host="h", port=3),
    ... )
    >>> "".join(balancer.pick(instances).id for _ in range(7))
    'aabacaa'
    """

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        # The full set, and the sets retries leave after excluding what they tried.
        self._cache = SnapshotCache(_weight_key, _Schedule, keep=4)

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        if not instances:
            return None
        return instances[self._cache.get(instances).next_position()]
