"""`RegistryService` nodes and `RegistryClient` over a real nats-server, with
the NATS KV backend: a registration's whole life as other processes see it,
a malformed request, and two nodes sharing one bucket that send each event
exactly once.

Each test has a subject prefix and a bucket of its own. Leases are real
here (one second, the shortest NATS keeps), and nodes sweep five times a
second.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import anyio
import anyio.abc
import pytest

from meshgate.bus.connection import ERROR_CODE_HEADER, Bus
from meshgate.bus.instance import InstanceStatus
from meshgate.bus.messages import QueryRequest, RegistryEvent
from meshgate.bus.nats_server import NatsServer
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.discovery.backends.nats_kv import NatsKvRegistryBackend
from registry_node.service import RegistryService
from tests.unit.discovery.backend_contract import instance

pytestmark = pytest.mark.anyio

SWEEP_INTERVAL = 0.2


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


class Events:
    """Registry events as a watcher sees them."""

    def __init__(self) -> None:
        self.seen: list[RegistryEvent] = []
        self._changed = anyio.Event()

    async def handler(self, event: RegistryEvent) -> None:
        self.seen.append(event)
        self._changed.set()

    async def wait_for(
        self, condition: Callable[[list[RegistryEvent]], bool], within: float = 4.0
    ) -> None:
        with anyio.fail_after(within):
            while not condition(self.seen):
                self._changed = anyio.Event()
                await self._changed.wait()

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.kind, e.instance.id) for e in self.seen]


class Cluster:
    """Registry nodes on one bucket, and a client on a connection of its own."""

    def __init__(self, server: NatsServer, stack: AsyncExitStack, tg: anyio.abc.TaskGroup) -> None:
        self.server = server
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.bucket = f"{self.prefix}_instances"
        self._stack = stack
        self._tg = tg

    async def connect(self, name: str) -> Bus:
        bus = await Bus.connect(self.server.url, prefix=self.prefix, name=name)
        return await self._stack.enter_async_context(bus)

    async def start_node(self, node_id: str) -> RegistryService:
        bus = await self.connect(node_id)
        backend = NatsKvRegistryBackend(bus, bucket=self.bucket, node_id=node_id)
        self._stack.push_async_callback(backend.aclose)
        service = RegistryService(bus, backend, sweep_interval=SWEEP_INTERVAL, node_id=node_id)
        await self._tg.start(service.run)
        return service

    async def client(self) -> tuple[Bus, RegistryClient, Events]:
        bus = await self.connect("client")
        client = RegistryClient(bus, timeout=2.0)
        events = Events()
        await client.watch(events.handler)
        await bus.flush()  # the watch is in place before anything happens
        return bus, client, events


@pytest.fixture
async def cluster(nats_server: NatsServer) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
        yield Cluster(nats_server, stack, tg)
        tg.cancel_scope.cancel()


async def test_a_registration_lives_and_dies_as_other_processes_see_it(cluster: Cluster) -> None:
    await cluster.start_node("r-1")
    _, client, events = await cluster.client()

    stored = await client.register(
        instance(zone="eu-1a", tags=("api",), metadata={"version": "2.0.0"}), ttl=1
    )
    await client.register(instance("user-2", zone="eu-1b"), ttl=60)
    await events.wait_for(lambda seen: len(seen) == 2)
    assert events.kinds() == [("registered", "user-1"), ("registered", "user-2")]
    assert events.seen[0].instance == stored

    found = await client.query(
        QueryRequest(service="user-service", zone="eu-1a", metadata={"version": "2.0.0"})
    )
    assert found == (stored,)
    assert [i.id for i in await client.get_instances("user-service")] == ["user-1", "user-2"]

    renewed = await client.heartbeat("user-service", "user-1")
    assert renewed is not None
    assert renewed.last_heartbeat >= stored.last_heartbeat

    await client.set_status("user-service", "user-1", InstanceStatus.DOWN)
    await client.set_status("user-service", "user-1", InstanceStatus.DOWN)
    await client.set_status("user-service", "user-2", InstanceStatus.UP)
    await events.wait_for(lambda seen: len(seen) == 3)

    # user-1 is no longer renewed: its one-second lease runs out
    await events.wait_for(lambda seen: len(seen) == 4)
    assert events.kinds()[2:] == [("status", "user-1"), ("expired", "user-1")]
    assert events.seen[2].instance.status is InstanceStatus.DOWN
    assert [i.id for i in await client.get_instances("user-service")] == ["user-2"]
    assert await client.heartbeat("user-service", "user-1") is None


async def test_a_malformed_request_gets_400_and_the_node_keeps_serving(cluster: Cluster) -> None:
    await cluster.start_node("r-1")
    bus, client, _ = await cluster.client()

    raw = await bus.nats_client.request(bus.subjects.registry_register, b"{not json", timeout=2)
    invalid = await bus.nats_client.request(
        bus.subjects.registry_register,
        b'{"instance": {"id": "u", "name": "user-service", "host": "h", "port": 0}, "ttl": 5}',
        timeout=2,
    )

    assert (raw.headers or {}).get(ERROR_CODE_HEADER) == "400"
    assert b'"code":"invalid"' in invalid.data
    assert b"instance.port=0" in invalid.data
    assert (await client.register(instance(), ttl=30)).id == "user-1"


async def test_two_nodes_on_one_bucket_send_each_event_exactly_once(cluster: Cluster) -> None:
    await cluster.start_node("r-1")
    await cluster.start_node("r-2")
    _, client, events = await cluster.client()
    ids = [f"user-{n}" for n in range(12)]

    for instance_id in ids:
        await client.register(instance(instance_id), ttl=1)
    await events.wait_for(lambda seen: sum(e.kind == "expired" for e in seen) == len(ids))
    # a duplicate would come within a sweep or two
    await anyio.sleep(3 * SWEEP_INTERVAL)

    counts = Counter((e.kind, e.instance.id) for e in events.seen)
    assert counts == Counter({(kind, i): 1 for i in ids for kind in ("registered", "expired")})
    assert await client.get_services() == []
