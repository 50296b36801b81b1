"""Where a route's requests may go: a discovered service's UP instances, or a
fixed list of addresses (Envoy's static cluster), narrowed to one version's
instances when the route has versions or a canary.

Filtering happens once per change of the instance list, not per request: the
filtered tuple is cached against the identity of the list it came from (the
discovery cache hands out the same tuple until the instances change), and the
same filtered tuple goes to the balancer, whose own caches then keep hitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.gateway.instance_filter import InstanceFilter
from meshgate.gateway.upstream_address import parse_upstream_address


class UpstreamSource(Protocol):
    """The candidates of one route (all versions)."""

    name: str
    """The service name (or the route name for fixed upstreams): what balancers
    and breakers are keyed by."""

    async def instances(self) -> Sequence[ServiceInstance]: ...


class StaticUpstreams:
    """Fixed addresses, each an UP instance whose id is its address.

    >>> import anyio
    >>> source = StaticUpstreams("static", ["127.0.0.1:9001", "127.0.0.1:9002"])
    >>> [i.id for i in anyio.run(source.instances)]
    ['127.0.0.1:9001', '127.0.0.1:9002']
    """

    __slots__ = ("_instances", "name")

    def __init__(self, name: str, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("upstreams must not be empty")
        self.name = name
        instances = []
        for address in addresses:
            host, port = parse_upstream_address(address)
            instances.append(ServiceInstance(id=f"{host}:{port}", name=name, host=host, port=port))
        self._instances = tuple(instances)

    @property
    def fixed(self) -> tuple[ServiceInstance, ...]:
        """The instances, which never change: callers on a hot path may read
        them here without awaiting `instances()`."""
        return self._instances

    async def instances(self) -> Sequence[ServiceInstance]:
        return self._instances


class DiscoveredUpstreams:
    """The UP instances of service `name`, from the discovery cache."""

    __slots__ = ("_discovery", "name")

    def __init__(self, name: str, discovery: DiscoveryClient) -> None:
        self.name = name
        self._discovery = discovery

    async def instances(self) -> Sequence[ServiceInstance]:
        return await self._discovery.up_instances(self.name)


class FilteredView:
    """`filter` applied to a source's lists, cached by the list's identity.

    >>> view = FilteredView(InstanceFilter(tags=("v2",)))
    >>> a = ServiceInstance(id="a", name="s", host="h", port=1, tags=("v1",))
    >>> b = ServiceInstance(id="b", name="s", host="h", port=2, tags=("v2",))
    >>> both = (a, b)
    >>> [i.id for i in view.apply(both)], view.apply(both) is view.apply(both)
    (['b'], True)
    """

    __slots__ = ("_filter", "_input", "_output")

    def __init__(self, instance_filter: InstanceFilter) -> None:
        self._filter = instance_filter
        self._input: Sequence[ServiceInstance] | None = None
        self._output: tuple[ServiceInstance, ...] = ()

    def apply(self, instances: Sequence[ServiceInstance]) -> Sequence[ServiceInstance]:
        if self._filter.is_empty:
            return instances
        if instances is not self._input:
            admits = self._filter.admits
            self._output = tuple(i for i in instances if admits(i))
            self._input = instances
        return self._output
