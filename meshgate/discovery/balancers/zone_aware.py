"""Zone-aware: keep traffic in the caller's own zone while that zone has
instances, and spill to the other zones only when it has none."""

from __future__ import annotations

from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.round_robin import RoundRobinBalancer


class ZoneAwareBalancer(LoadBalancer):
    """Prefers instances in `zone`; when none of the given instances is there,
    picks among all of them. The pick within the chosen set is delegated to
    `inner` (round-robin by default), and so are `on_start` / `on_finish`.

    Like every balancer it reads no status: the discovery client passes only
    `UP` instances, so "no instance in the zone" means "none up there".

    >>> balancer = ZoneAwareBalancer("eu-west-1")
    >>> instances = (
    ...     ServiceInstance(id="far", name="svc", host="h", port=1, zone="us-east-1"),
    ...     ServiceInstance(id="near", name="svc", host="h", port=2, zone="eu-west-1"),
    ... )
    >>> balancer.pick(instances).id
    'near'
    >>> balancer.pick(instances[:1]).id
    'far'
    """

    __slots__ = ("_inner", "_local", "_source", "zone")

    def __init__(self, zone: str, *, inner: LoadBalancer | None = None) -> None:
        if not isinstance(zone, str) or not zone:
            raise ValueError(f"zone={zone!r} is not allowed: expected a non-empty zone name")
        self.zone = zone
        self._inner = inner if inner is not None else RoundRobinBalancer()
        self._source: tuple[ServiceInstance, ...] | None = None
        self._local: tuple[ServiceInstance, ...] = ()

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        if not instances:
            return None
        if instances is not self._source:
            # The subset holds instance objects, so unlike the other caches it
            # is rebuilt for any new list: a pass the caller's new list costs
            # the inner balancer anyway. Kept as a tuple, so that a repeated
            # tuple from the caller gives the inner balancer one too.
            self._local = tuple(instance for instance in instances if instance.zone == self.zone)
            self._source = instances if isinstance(instances, tuple) else None
        return self._inner.pick(self._local or instances, client_ip=client_ip)

    def on_start(self, instance: ServiceInstance) -> None:
        self._inner.on_start(instance)

    def on_finish(self, instance: ServiceInstance, latency_s: float, ok: bool, now: float) -> None:
        self._inner.on_finish(instance, latency_s, ok, now)
