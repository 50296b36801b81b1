"""Least-connections: each pick goes to an instance with the fewest requests
in flight, as counted through `on_start` / `on_finish`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.snapshot import SnapshotCache, instance_id


class _Load:
    """The current instances grouped by in-flight count, so that the least
    loaded is found in O(1) instead of a scan.

    Each bucket is an OrderedDict of list positions used as an ordered set:
    a pick moves its choice to the back, so ties rotate instead of always
    landing on the first instance.
    """

    __slots__ = ("buckets", "lowest", "position_of")

    def __init__(self, instances: Sequence[ServiceInstance], in_flight: dict[str, int]) -> None:
        self.position_of = {instance.id: position for position, instance in enumerate(instances)}
        self.buckets: dict[int, OrderedDict[int, None]] = {}
        for position, instance in enumerate(instances):
            count = in_flight.get(instance.id, 0)
            bucket = self.buckets.get(count)
            if bucket is None:
                bucket = self.buckets[count] = OrderedDict()
            bucket[position] = None
        self.lowest = min(self.buckets, default=0)

    def take_least_loaded(self) -> int:
        bucket = self.buckets[self.lowest]
        position = next(iter(bucket))
        bucket.move_to_end(position)
        return position

    def move(self, position: int, old: int, new: int) -> None:
        source = self.buckets[old]
        del source[position]
        # Emptied buckets stay: every request would otherwise create and drop
        # one. There are only as many as the highest count ever reached.
        target = self.buckets.get(new)
        if target is None:
            target = self.buckets[new] = OrderedDict()
        target[position] = None
        if new < self.lowest:
            self.lowest = new
        elif old == self.lowest and not source:
            # `new` is old + 1 here, and nothing lies below `old`.
            self.lowest = new


class LeastConnectionsBalancer(LoadBalancer):
    """Picks an instance with the fewest requests in flight; ties go round-robin.

    Counts are kept per instance id, so a request still running on an
    instance that left the list is counted if it comes back. Picks, `on_start`
    and `on_finish` are O(1); a changed list of ids costs one O(n) rebuild.

    >>> balancer = LeastConnectionsBalancer()
    >>> a, b = (ServiceInstance(id=i, name="svc", host="h", port=1) for i in "ab")
    >>> instances = (a, b)
    >>> balancer.on_start(balancer.pick(instances))   # a is busy now
    >>> balancer.pick(instances).id
    'b'
    """

    __slots__ = ("_cache", "_in_flight")

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}
        self._cache = SnapshotCache(instance_id, self._derive)

    def _derive(self, instances: Sequence[ServiceInstance]) -> _Load:
        return _Load(instances, self._in_flight)

    def in_flight(self, instance: ServiceInstance) -> int:
        """Requests to `instance` started and not yet finished."""
        return self._in_flight.get(instance.id, 0)

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        if not instances:
            return None
        return instances[self._cache.get(instances).take_least_loaded()]

    def on_start(self, instance: ServiceInstance) -> None:
        count = self._in_flight.get(instance.id, 0)
        self._in_flight[instance.id] = count + 1
        self._rebucket(instance.id, count, count + 1)

    def on_finish(self, instance: ServiceInstance, latency_s: float, ok: bool, now: float) -> None:
        count = self._in_flight.get(instance.id, 0)
        if count == 0:
            # A finish without a start (or a second one) must not drive a count negative.
            return
        if count == 1:
            # Dropping zeros keeps the map as small as the set of busy instances.
            del self._in_flight[instance.id]
        else:
            self._in_flight[instance.id] = count - 1
        self._rebucket(instance.id, count, count - 1)

    def _rebucket(self, id_: str, old: int, new: int) -> None:
        load = self._cache.peek()
        if load is None:
            return
        position = load.position_of.get(id_)
        if position is not None:
            load.move(position, old, new)
