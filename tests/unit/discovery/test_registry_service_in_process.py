"""`RegistryService` and `RegistryClient` over an `InProcessBus`, with a
`MemoryRegistryBackend` on a manual clock: the registry's request handling,
validation, filters, events and lease sweep, exact and fast, under asyncio
and trio alike.

The service's own sweep loop runs once at start and then every hour, so
tests move the clock and call `sweep()` themselves, except the one test of
the loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import pytest

from meshgate.bus.errors import BusError, RemoteError
from meshgate.bus.in_process import InProcessBus
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    HeartbeatRequest,
    QueryRequest,
    RegisterRequest,
    RegistryEvent,
    Reply,
)
from meshgate.discovery.backends.bus_client import RegistryClient, RegistryUnavailableError
from meshgate.discovery.backends.kubernetes import KubernetesRegistryBackend
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.backends.protocol import RegistryBackend
from meshgate.discovery.errors import RegistryUnavailableError as DiscoveryUnavailableError
from meshgate.resilience.clock import ManualClock
from registry_node.service import RegistryService
from tests.unit.discovery.backend_contract import START, instance

pytestmark = pytest.mark.anyio

DEFAULT_TTL = 30.0
MAX_TTL = 300.0


class Events:
    """The registry events seen on the bus, in order."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[RegistryEvent](100)

    async def handler(self, event: RegistryEvent) -> None:
        await self._send.send(event)

    async def next(self) -> RegistryEvent:
        with anyio.fail_after(1):
            return await self._receive.receive()

    async def assert_none(self) -> None:
        """Nothing more arrives: every handler has run once the bus is idle."""
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.WouldBlock):
            self._receive.receive_nowait()


@dataclass
class Registry:
    bus: InProcessBus
    service: RegistryService
    client: RegistryClient
    clock: ManualClock
    events: Events


async def start_registry(
    bus: InProcessBus, tg: anyio.abc.TaskGroup, backend: RegistryBackend, clock: ManualClock
) -> Registry:
    service = RegistryService(
        bus,
        backend,
        default_ttl=DEFAULT_TTL,
        max_ttl=MAX_TTL,
        sweep_interval=3600,
        node_id="r-1",
        clock=clock,
    )
    await tg.start(service.run)
    client = RegistryClient(bus, timeout=1.0)
    events = Events()
    await client.watch(events.handler)
    return Registry(bus, service, client, clock, events)


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    clock = ManualClock(START)
    async with InProcessBus() as bus, anyio.create_task_group() as tg:
        yield await start_registry(bus, tg, MemoryRegistryBackend(clock=clock), clock)
        tg.cancel_scope.cancel()


async def test_register_stores_the_instance_broadcasts_it_and_answers_queries(
    registry: Registry,
) -> None:
    stored = await registry.client.register(instance(zone="eu-1a"), ttl=20)

    assert stored == instance(zone="eu-1a", registered_at=START, last_heartbeat=START)
    event = await registry.events.next()
    assert (event.kind, event.instance, event.at) == ("registered", stored, START)
    assert await registry.client.get_instances("user-service") == [stored]
    assert await registry.client.get_services() == ["user-service"]


async def test_the_register_reply_carries_the_lease(registry: Registry) -> None:
    reply = await registry.bus.request(
        registry.bus.subjects.registry_register, RegisterRequest(instance=instance(), ttl=20), Reply
    )

    assert reply.ok
    assert (reply.lease_ttl, reply.lease_expires_at) == (20.0, START + 20)


async def test_a_lease_of_zero_gets_the_default_ttl(registry: Registry) -> None:
    reply = await registry.bus.request(
        registry.bus.subjects.registry_register, RegisterRequest(instance=instance(), ttl=0), Reply
    )

    assert reply.lease_ttl == DEFAULT_TTL
    registry.clock.advance(DEFAULT_TTL - 1)
    assert await registry.service.sweep() == []
    registry.clock.advance(1)
    assert [i.id for i in await registry.service.sweep()] == ["user-1"]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (RegisterRequest(instance=instance(port=0), ttl=10), "instance.port=0"),
        (RegisterRequest(instance=instance(port=70000), ttl=10), "instance.port=70000"),
        (RegisterRequest(instance=instance(""), ttl=10), "instance.id=''"),
        (RegisterRequest(instance=instance(name="  "), ttl=10), "instance.name='  '"),
        (RegisterRequest(instance=instance(host=""), ttl=10), "instance.host=''"),
        (RegisterRequest(instance=instance(health_check_path="x"), ttl=10), "instance.health"),
        (RegisterRequest(instance=instance(), ttl=-1), "ttl=-1"),
        (RegisterRequest(instance=instance(), ttl=MAX_TTL + 1), "ttl=301"),
    ],
)
async def test_an_invalid_registration_is_refused_naming_the_field(
    registry: Registry, request_: RegisterRequest, field: str
) -> None:
    reply = await registry.bus.request(registry.bus.subjects.registry_register, request_, Reply)

    assert not reply.ok
    assert reply.code == "invalid"
    assert reply.error is not None
    assert reply.error.startswith(field)
    await registry.events.assert_none()


async def test_the_client_raises_value_error_for_an_invalid_registration(
    registry: Registry,
) -> None:
    with pytest.raises(ValueError, match=r"instance\.port=0: expected 1\.\.65535"):
        await registry.client.register(instance(port=0), ttl=10)


async def test_a_request_that_does_not_decode_gets_400_and_the_node_keeps_serving(
    registry: Registry,
) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.bus.request(
            registry.bus.subjects.registry_register,
            HeartbeatRequest(service="user-service", instance_id="user-1"),
            Reply,
        )

    assert caught.value.code == "400"
    assert (await registry.client.register(instance(), ttl=10)).id == "user-1"


async def test_query_applies_every_filter(registry: Registry) -> None:
    await registry.client.register(
        instance("a", zone="eu-1a", tags=("api", "v2"), metadata={"version": "2.0.0"}), ttl=60
    )
    await registry.client.register(
        instance("b", zone="eu-1b", tags=("api",), metadata={"version": "1.0.0", "canary": True}),
        ttl=60,
    )
    await registry.client.register(instance("c", zone="eu-1a", metadata={"weight": 1}), ttl=60)
    await registry.client.set_status("user-service", "c", InstanceStatus.DOWN)

    async def ids(**filters: Any) -> list[str]:
        request = QueryRequest(service="user-service", **filters)
        return [i.id for i in await registry.client.query(request)]

    assert await ids() == ["a", "b", "c"]
    assert await ids(zone="eu-1a") == ["a", "c"]
    assert await ids(tags=("api",)) == ["a", "b"]
    assert await ids(tags=("api", "v2")) == ["a"]
    assert await ids(metadata={"version": "1.0.0"}) == ["b"]
    assert await ids(metadata={"canary": True}) == ["b"]
    assert await ids(metadata={"weight": True}) == []  # True is not 1 here
    assert await ids(status=InstanceStatus.UP) == ["a", "b"]
    assert await ids(status=InstanceStatus.DOWN, zone="eu-1a") == ["c"]
    assert await ids(zone="eu-1a", tags=("v2",), metadata={"version": "2.0.0"}) == ["a"]
    assert await ids(zone="us-1") == []


async def test_an_empty_service_name_queries_every_service(registry: Registry) -> None:
    await registry.client.register(instance("u-1"), ttl=60)
    await registry.client.register(instance("o-1", name="order-service", zone="z"), ttl=60)

    everything = await registry.client.query(QueryRequest(service=""))
    in_zone = await registry.client.query(QueryRequest(service="", zone="z"))

    assert sorted(i.id for i in everything) == ["o-1", "u-1"]
    assert [i.id for i in in_zone] == ["o-1"]
    assert await registry.client.get_services() == ["order-service", "user-service"]


async def test_heartbeat_renews_the_lease_without_an_event(registry: Registry) -> None:
    await registry.client.register(instance(), ttl=10)
    await registry.events.next()
    registry.clock.advance(8)

    renewed = await registry.client.heartbeat("user-service", "user-1")

    assert renewed is not None
    assert renewed.last_heartbeat == START + 8
    registry.clock.advance(9)
    assert await registry.service.sweep() == []
    await registry.events.assert_none()


async def test_heartbeat_of_an_unknown_instance_tells_the_owner_to_register_again(
    registry: Registry,
) -> None:
    reply = await registry.bus.request(
        registry.bus.subjects.registry_heartbeat,
        HeartbeatRequest(service="user-service", instance_id="ghost"),
        Reply,
    )

    assert (reply.ok, reply.code) == (False, "not_found")
    assert await registry.client.heartbeat("user-service", "ghost") is None


async def test_a_status_event_is_sent_only_when_the_status_changes(registry: Registry) -> None:
    await registry.client.register(instance(), ttl=60)
    assert (await registry.events.next()).kind == "registered"

    down = await registry.client.set_status("user-service", "user-1", InstanceStatus.DOWN)
    event = await registry.events.next()
    again = await registry.client.set_status("user-service", "user-1", InstanceStatus.DOWN)
    await registry.events.assert_none()
    up = await registry.client.set_status("user-service", "user-1", InstanceStatus.UP)

    assert down is not None
    assert again == down
    assert (event.kind, event.instance.status) == ("status", InstanceStatus.DOWN)
    assert up is not None
    assert up.status is InstanceStatus.UP
    event = await registry.events.next()
    assert (event.kind, event.instance.status) == ("status", InstanceStatus.UP)
    assert await registry.client.set_status("user-service", "ghost", InstanceStatus.UP) is None


async def test_a_lease_that_runs_out_is_expired_and_broadcast_once(registry: Registry) -> None:
    stored = await registry.client.register(instance(), ttl=10)
    await registry.events.next()

    registry.clock.advance(10)
    assert await registry.service.sweep() == [stored]
    assert await registry.service.sweep() == []

    event = await registry.events.next()
    assert (event.kind, event.instance, event.at) == ("expired", stored, START + 10)
    await registry.events.assert_none()
    assert await registry.client.heartbeat("user-service", "user-1") is None
    assert await registry.client.get_instances("user-service") == []


async def test_deregister_broadcasts_what_it_removed(registry: Registry) -> None:
    stored = await registry.client.register(instance(), ttl=10)
    await registry.events.next()

    assert await registry.client.deregister("user-service", "user-1") == stored
    event = await registry.events.next()
    assert (event.kind, event.instance) == ("deregistered", stored)
    assert await registry.client.deregister("user-service", "user-1") is None
    await registry.events.assert_none()


async def test_the_sweep_loop_expires_leases_on_its_own() -> None:
    clock = ManualClock(START)
    async with InProcessBus() as bus, anyio.create_task_group() as tg:
        service = RegistryService(
            bus, MemoryRegistryBackend(clock=clock), sweep_interval=0.01, clock=clock
        )
        await tg.start(service.run)
        client = RegistryClient(bus)
        events = Events()
        await client.watch(events.handler)
        await client.register(instance(), ttl=5)
        assert (await events.next()).kind == "registered"

        clock.advance(5)

        assert (await events.next()).kind == "expired"
        tg.cancel_scope.cancel()


async def test_a_read_only_backend_refuses_writes_as_forbidden() -> None:
    clock = ManualClock(START)
    backend = KubernetesRegistryBackend("http://127.0.0.1:9", namespace="default")
    async with InProcessBus() as bus, anyio.create_task_group() as tg:
        registry = await start_registry(bus, tg, backend, clock)
        reply = await bus.request(
            bus.subjects.registry_register, RegisterRequest(instance=instance(), ttl=10), Reply
        )
        assert (reply.ok, reply.code) == (False, "forbidden")
        with pytest.raises(PermissionError):
            await registry.client.deregister("user-service", "user-1")
        tg.cancel_scope.cancel()
    await backend.aclose()


class UnreachableBackend(MemoryRegistryBackend):
    """A backend whose server is down: every read fails."""

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        raise ConnectionError("backend server down")

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        raise ConnectionError("backend server down")


async def test_a_failing_backend_makes_the_client_fall_back_and_the_node_serve_on() -> None:
    clock = ManualClock(START)
    async with InProcessBus() as bus, anyio.create_task_group() as tg:
        registry = await start_registry(bus, tg, UnreachableBackend(clock=clock), clock)

        with pytest.raises(RegistryUnavailableError, match="ConnectionError"):
            await registry.client.get_instances("user-service")
        with pytest.raises(DiscoveryUnavailableError):
            await registry.client.heartbeat("user-service", "user-1")
        assert (await registry.client.register(instance(), ttl=10)).id == "user-1"
        tg.cancel_scope.cancel()


async def test_without_a_registry_node_the_client_raises_registry_unavailable() -> None:
    async with InProcessBus() as bus:
        client = RegistryClient(bus, timeout=0.5)
        with pytest.raises(RegistryUnavailableError) as caught:
            await client.register(instance(), ttl=10)

    assert isinstance(caught.value, BusError)
    assert caught.value.service == "user-service"
    assert await client.expire() == []
