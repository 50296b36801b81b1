import anyio
import pytest

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.gateway.instance_filter import InstanceFilter
from meshgate.gateway.upstream_source import (
    DiscoveredUpstreams,
    FilteredView,
    StaticUpstreams,
)


def test_static_upstreams_are_up_instances_named_by_address() -> None:
    source = StaticUpstreams("billing", ["10.0.0.1:80", "10.0.0.2:80"])
    instances = anyio.run(source.instances)
    assert [(i.id, i.name, i.status) for i in instances] == [
        ("10.0.0.1:80", "billing", InstanceStatus.UP),
        ("10.0.0.2:80", "billing", InstanceStatus.UP),
    ]


def test_a_filtered_view_recomputes_only_when_the_list_changes() -> None:
    v1 = ServiceInstance(id="a", name="s", host="h", port=1, metadata={"version": "1"})
    v2 = ServiceInstance(id="b", name="s", host="h", port=2, metadata={"version": "2"})
    view = FilteredView(InstanceFilter(metadata={"version": "2"}))
    first = (v1, v2)
    filtered = view.apply(first)
    assert [i.id for i in filtered] == ["b"]
    assert view.apply(first) is filtered
    assert [i.id for i in view.apply((v2,))] == ["b"]


def test_an_empty_filter_passes_the_list_through() -> None:
    instances = (ServiceInstance(id="a", name="s", host="h", port=1),)
    assert FilteredView(InstanceFilter()).apply(instances) is instances


@pytest.mark.anyio
async def test_discovered_upstreams_are_the_up_instances_of_the_service() -> None:
    backend = MemoryRegistryBackend()
    await backend.register(ServiceInstance(id="u1", name="user", host="h", port=1), ttl=30)
    await backend.register(
        ServiceInstance(id="u2", name="user", host="h", port=2, status=InstanceStatus.DOWN),
        ttl=30,
    )
    source = DiscoveredUpstreams("user", DiscoveryClient(backend))
    first = await source.instances()
    assert [i.id for i in first] == ["u1"]
    assert await source.instances() is first
