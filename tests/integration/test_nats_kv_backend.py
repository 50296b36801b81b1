"""`NatsKvRegistryBackend` against a real nats-server (`nats_server` fixture):
the shared backend contract, recovery after a restart of the registry
node, and expiry reported exactly once when several nodes share a bucket.

Each test uses a bucket of its own. Leases in the contract run on the
contract's manual clock (the sweep path); the tests that let the server
expire keys use real one-second TTLs, the shortest NATS allows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import msgspec
import pytest
from structlog.testing import capture_logs

from meshgate.bus.connection import Bus
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.nats_server import NatsServer
from meshgate.discovery.backends.nats_kv import NatsKvRegistryBackend
from meshgate.resilience.clock import ManualClock
from tests.unit.discovery.backend_contract import START, BackendContract, instance

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


@pytest.fixture
def bucket() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    async with await Bus.connect(nats_server.url, name="test") as bus:
        yield bus


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


class TestNatsKvBackendContract(BackendContract):
    @pytest.fixture
    async def backend(
        self, bus: Bus, bucket: str, clock: ManualClock
    ) -> AsyncIterator[NatsKvRegistryBackend]:
        backend = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
        yield backend
        await backend.aclose()


async def expire_until(
    backends: list[NatsKvRegistryBackend], count: int, *, within: float = 4.0
) -> list[list[ServiceInstance]]:
    """Call `expire` on every backend, concurrently and repeatedly, until
    `count` instances have been reported in all, then once more; returns
    what each backend reported."""
    reported: list[list[ServiceInstance]] = [[] for _ in backends]

    async def sweep(index: int) -> None:
        reported[index].extend(await backends[index].expire())

    with anyio.fail_after(within):
        while sum(map(len, reported)) < count:
            async with anyio.create_task_group() as tg:
                for index in range(len(backends)):
                    tg.start_soon(sweep, index)
            await anyio.sleep(0.05)
    async with anyio.create_task_group() as tg:
        for index in range(len(backends)):
            tg.start_soon(sweep, index)
    return reported


async def test_instances_are_stored_under_encoded_service_and_id_keys(
    bus: Bus, bucket: str, clock: ManualClock
) -> None:
    backend = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
    stored = await backend.register(instance("v1.2", name="api/users"), ttl=30)

    entry = await bus.kv_get(bucket, "api/users.v1=2E2")

    assert entry is not None
    assert entry.value is not None
    value = msgspec.json.decode(entry.value)
    assert sorted(value) == ["expires_at", "instance", "ttl"]
    assert msgspec.convert(value["instance"], ServiceInstance) == stored
    assert (value["ttl"], value["expires_at"]) == (30.0, START + 30)
    assert await backend.get_services() == ["api/users"]


async def test_a_restarted_node_finds_every_instance_in_the_bucket(
    nats_server: NatsServer, bucket: str
) -> None:
    async with await Bus.connect(nats_server.url) as first_bus:
        first = NatsKvRegistryBackend(first_bus, bucket=bucket)
        user = await first.register(instance("user-1"), ttl=60)
        order = await first.register(instance("order-1", name="order-service"), ttl=60)
        await first.aclose()

    async with await Bus.connect(nats_server.url) as second_bus:
        second = NatsKvRegistryBackend(second_bus, bucket=bucket)
        assert await second.get_services() == ["order-service", "user-service"]
        assert await second.get_instances("user-service") == [user]
        assert await second.get_instances("order-service") == [order]
        beat = await second.heartbeat("user-service", "user-1")
        assert beat is not None
        await second.aclose()


async def test_the_server_expires_a_lease_nobody_renews_and_one_node_reports_it(
    nats_server: NatsServer, bucket: str, clock: ManualClock
) -> None:
    # The clock stands still, so no node's sweep sees the deadline pass: only
    # the server's TTL can end this lease.
    async with (
        await Bus.connect(nats_server.url) as bus_a,
        await Bus.connect(nats_server.url) as bus_b,
    ):
        node_a = NatsKvRegistryBackend(bus_a, bucket=bucket, clock=clock, node_id="a")
        node_b = NatsKvRegistryBackend(bus_b, bucket=bucket, clock=clock, node_id="b")
        assert await node_a.expire() == []
        assert await node_b.expire() == []
        stored = await node_a.register(instance(), ttl=1)

        reported = await expire_until([node_a, node_b], 1)

        assert sorted(reported, key=len) == [[], [stored]]
        assert await bus_a.kv_get(bucket, "user-service.user-1") is None
        assert await node_b.get_instances("user-service") == []
        await node_a.aclose()
        await node_b.aclose()


async def test_nodes_sweeping_at_once_report_each_expired_instance_once(
    nats_server: NatsServer, bucket: str, clock: ManualClock
) -> None:
    async with (
        await Bus.connect(nats_server.url) as bus_a,
        await Bus.connect(nats_server.url) as bus_b,
    ):
        nodes = [
            NatsKvRegistryBackend(bus_a, bucket=bucket, clock=clock),
            NatsKvRegistryBackend(bus_b, bucket=bucket, clock=clock),
        ]
        stored = [await nodes[0].register(instance(f"user-{n}"), ttl=10) for n in range(20)]
        clock.advance(10)

        reported = await expire_until(nodes, 20)

        assert sorted((i for r in reported for i in r), key=lambda i: i.id) == sorted(
            stored, key=lambda i: i.id
        )
        for node in nodes:
            await node.aclose()


async def test_a_heartbeat_does_not_bring_back_a_deregistered_instance(
    bus: Bus, bucket: str, clock: ManualClock
) -> None:
    node_a = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
    node_b = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
    await node_a.register(instance(), ttl=10)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(node_a.heartbeat, "user-service", "user-1")
        tg.start_soon(node_b.deregister, "user-service", "user-1")

    assert await node_a.get_instances("user-service") == []
    assert await node_a.heartbeat("user-service", "user-1") is None


async def test_set_status_keeps_the_server_side_lease(bus: Bus, bucket: str) -> None:
    backend = NatsKvRegistryBackend(bus, bucket=bucket)
    await backend.register(instance(), ttl=1)

    await backend.set_status("user-service", "user-1", InstanceStatus.DOWN)
    await anyio.sleep(1.5)

    assert await bus.kv_get(bucket, "user-service.user-1") is None


async def test_a_node_that_wins_a_claim_without_the_value_logs_it(
    nats_server: NatsServer, bucket: str, clock: ManualClock
) -> None:
    async with await Bus.connect(nats_server.url) as bus:
        writer = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
        await writer.register(instance(), ttl=1)
        with anyio.fail_after(4):
            # the server says nothing when a key expires, so ask until it is gone
            while await bus.kv_get(bucket, "user-service.user-1") is not None:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        # a node starting after the expiry sees the marker but never the value
        late = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
        with capture_logs() as logs:
            assert await late.expire() == []
        assert [e["event"] for e in logs] == ["registry.expired_record_missing"]
        assert logs[0]["instance_id"] == "user-1"
        await late.aclose()


async def test_a_sweep_finds_expired_leases_in_its_watch_without_reading_every_key(
    bus: Bus, bucket: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full read of the bucket on every sweep cost ~200 ms of CPU at 10,000
    # instances; the watch already holds every key's revision and deadline.
    backend = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
    assert await backend.expire() == []  # starts the watch
    reads: list[str] = []
    read_every_key = backend._snapshot

    async def counted(pattern: str) -> object:
        reads.append(pattern)
        return await read_every_key(pattern)

    monkeypatch.setattr(backend, "_snapshot", counted)
    stored = [await backend.register(instance(f"user-{n}"), ttl=10) for n in range(3)]
    await backend.register(instance("user-9"), ttl=60)
    clock.advance(10)

    # written just before the sweep, and seen by it all the same
    assert await backend.expire() == stored
    assert await backend.expire() == []
    assert reads == []
    await backend.aclose()


async def test_a_lease_renewed_behind_the_watchs_back_is_not_expired(
    bus: Bus, bucket: str, clock: ManualClock
) -> None:
    sweeper = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
    writer = NatsKvRegistryBackend(bus, bucket=bucket, clock=clock)
    await sweeper.register(instance(), ttl=10)
    assert await sweeper.expire() == []
    clock.advance(9)
    renewed = await writer.heartbeat("user-service", "user-1")
    assert renewed is not None
    clock.advance(2)  # past the first deadline, before the renewed one

    assert await sweeper.expire() == []
    assert await sweeper.get_instances("user-service") == [renewed]
    clock.advance(10)
    assert await sweeper.expire() == [renewed]
    await sweeper.aclose()
    await writer.aclose()
