"""A registry node that holds a registration key, over a real nats-server:
requests signed with the key change the registry; unsigned, forged,
tampered, replayed and stale ones are refused with ``forbidden`` and leave
the real instance exactly as it was, so a process on the bus cannot hijack
a service's traffic.

Every test has a subject prefix and a KV bucket of its own. The node runs in
this process (as in test_registry_service.py); `owner` is a `RegistryClient`
that holds the key, `rogue` one on the same bus without it, and `raw` a
connection that sends hand-made requests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
import pytest
from structlog.testing import capture_logs

from meshgate.bus.connection import Bus
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    DeregisterRequest,
    HeartbeatRequest,
    RegisterRequest,
    RegistryEvent,
    Reply,
    StatusReport,
)
from meshgate.bus.nats_server import NatsServer
from meshgate.bus.signing import RegistrationSigner
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.discovery.backends.nats_kv import NatsKvRegistryBackend
from meshgate.discovery.service_registry import ServiceRegistry
from registry_node.health_checker import HealthChecker
from registry_node.service import RegistryService
from tests.integration.test_health_checker import health_endpoint
from tests.unit.discovery.backend_contract import instance

pytestmark = pytest.mark.anyio

KEY = b"integration-test-registration-key"
OTHER_KEY = b"some-other-key-a-rogue-made-up"
ROGUE_HOST = "10.6.6.6"

RegistryRequest = RegisterRequest | DeregisterRequest | HeartbeatRequest | StatusReport


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


@dataclass
class SignedRegistry:
    node: RegistryService
    raw: Bus
    owner: RegistryClient
    rogue: RegistryClient
    events: list[RegistryEvent]
    logs: list[MutableMapping[str, Any]]
    stack: AsyncExitStack
    server: NatsServer

    async def send(self, request: RegistryRequest) -> Reply:
        """`request` as it is, to the subject of its kind."""
        subjects = self.raw.subjects
        subject = {
            RegisterRequest: subjects.registry_register,
            DeregisterRequest: subjects.registry_deregister,
            HeartbeatRequest: subjects.registry_heartbeat,
            StatusReport: subjects.registry_status,
        }[type(request)]
        return await self.raw.request(subject, request, Reply)

    async def stored(self, service: str = "user-service") -> list[ServiceInstance]:
        return await self.owner.get_instances(service)

    async def broadcast_so_far(self) -> list[tuple[str, str]]:
        """Every event the node has sent until now, as (kind, instance id).

        A marker registration goes last: the node publishes in order on one
        connection, so once its event is here every earlier one is too."""
        marker = f"marker-{uuid.uuid4().hex[:8]}"
        await self.owner.register(instance(marker, name="marker-service"), ttl=60)
        with anyio.fail_after(4):
            while not any(e.instance.id == marker for e in self.events):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        return [(e.kind, e.instance.id) for e in self.events if e.instance.id != marker]

    def refusals(self) -> list[tuple[str, str]]:
        """(action, reason) of every ``registry.request_refused`` logged."""
        return [
            (entry["action"], entry["reason"])
            for entry in self.logs
            if entry["event"] == "registry.request_refused"
        ]


@pytest.fixture
async def registry(nats_server: NatsServer) -> AsyncIterator[SignedRegistry]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    # The node binds its logger when built, so capture before building it.
    with capture_logs() as logs:
        async with AsyncExitStack() as stack, anyio.create_task_group() as tg:

            async def connect(name: str) -> Bus:
                bus = await Bus.connect(nats_server.url, prefix=prefix, name=name)
                return await stack.enter_async_context(bus)

            node_bus = await connect("registry")
            backend = NatsKvRegistryBackend(node_bus, bucket=f"{prefix}_instances", node_id="r-1")
            stack.push_async_callback(backend.aclose)
            node = RegistryService(
                node_bus,
                backend,
                sweep_interval=0.2,
                node_id="r-1",
                signer=RegistrationSigner(KEY),
            )
            await tg.start(node.run)
            owner = RegistryClient(await connect("owner"), signer=RegistrationSigner(KEY))
            rogue = RegistryClient(await connect("rogue"))
            events: list[RegistryEvent] = []

            async def record(event: RegistryEvent) -> None:
                events.append(event)

            raw = await connect("raw")
            await owner.watch(record)
            await raw.flush()
            yield SignedRegistry(node, raw, owner, rogue, events, logs, stack, nats_server)
            tg.cancel_scope.cancel()


async def test_requests_signed_with_the_key_do_their_work(registry: SignedRegistry) -> None:
    owner = registry.owner

    stored = await owner.register(instance(), ttl=60)
    assert await owner.heartbeat("user-service", "user-1") is not None
    assert (await owner.set_status("user-service", "user-1", InstanceStatus.DOWN)) is not None
    down = await registry.stored()
    assert await owner.deregister("user-service", "user-1") is not None

    assert registry.node.requires_signatures
    assert stored.address == "10.0.0.5:3001"
    assert [i.status for i in down] == [InstanceStatus.DOWN]
    assert await registry.stored() == []
    assert await registry.broadcast_so_far() == [
        ("registered", "user-1"),
        ("status", "user-1"),
        ("deregistered", "user-1"),
    ]
    assert registry.refusals() == []


async def test_queries_need_no_signature(registry: SignedRegistry) -> None:
    stored = await registry.owner.register(instance(), ttl=60)

    assert await registry.rogue.get_instances("user-service") == [stored]


async def test_an_unsigned_registration_cannot_take_over_an_instance(
    registry: SignedRegistry,
) -> None:
    real = await registry.owner.register(instance(), ttl=60)

    with pytest.raises(PermissionError, match="register refused: unsigned") as refused:
        await registry.rogue.register(instance(host=ROGUE_HOST), ttl=60)

    assert "registration key" in str(refused.value)
    assert await registry.stored() == [real]
    assert await registry.broadcast_so_far() == [("registered", "user-1")]
    assert registry.refusals() == [("register", "unsigned")]


async def test_an_unsigned_registration_of_a_new_instance_stores_nothing(
    registry: SignedRegistry,
) -> None:
    with pytest.raises(PermissionError, match="unsigned"):
        await registry.rogue.register(instance("rogue-1", host=ROGUE_HOST), ttl=60)

    assert await registry.stored() == []
    assert await registry.broadcast_so_far() == []


async def test_a_registration_signed_with_another_key_is_refused(
    registry: SignedRegistry,
) -> None:
    real = await registry.owner.register(instance(), ttl=60)
    forger = RegistryClient(registry.raw, signer=RegistrationSigner(OTHER_KEY))

    with pytest.raises(PermissionError, match="bad signature"):
        await forger.register(instance(host=ROGUE_HOST), ttl=60)

    assert await registry.stored() == [real]
    assert registry.refusals() == [("register", "bad signature")]


async def test_a_signed_registration_altered_in_flight_is_refused(
    registry: SignedRegistry,
) -> None:
    real = await registry.owner.register(instance(), ttl=60)
    signed = RegistrationSigner(KEY).sign(RegisterRequest(instance=real, ttl=60), time.time())
    altered = msgspec.structs.replace(signed, instance=instance(host=ROGUE_HOST))

    reply = await registry.send(altered)

    assert (reply.ok, reply.code) == (False, "forbidden")
    assert await registry.stored() == [real]


async def test_a_replayed_registration_cannot_move_the_instance_back(
    registry: SignedRegistry,
) -> None:
    # A captured registration at the old address, replayed once the owner moved.
    captured = RegistrationSigner(KEY).sign(
        RegisterRequest(instance=instance(host="10.0.0.5"), ttl=60), time.time()
    )
    assert (await registry.send(captured)).ok
    moved = await registry.owner.register(instance(host="10.0.0.7"), ttl=60)

    reply = await registry.send(captured)

    assert (reply.ok, reply.code) == (False, "forbidden")
    assert reply.error is not None
    assert "replayed" in reply.error
    assert await registry.stored() == [moved]
    assert registry.refusals() == [("register", "replayed")]


async def test_a_stale_registration_is_refused(registry: SignedRegistry) -> None:
    an_hour_ago = time.time() - 3600
    old = RegistrationSigner(KEY).sign(RegisterRequest(instance=instance(), ttl=60), an_hour_ago)

    reply = await registry.send(old)

    assert (reply.ok, reply.code) == (False, "forbidden")
    assert reply.error is not None
    assert "stale" in reply.error
    assert await registry.stored() == []
    assert registry.refusals() == [("register", "stale")]


async def test_a_heartbeat_with_a_bad_signature_is_refused_and_renews_nothing(
    registry: SignedRegistry,
) -> None:
    real = await registry.owner.register(instance(), ttl=60)
    await anyio.sleep(0.05)  # a renewal would now move last_heartbeat
    signed = RegistrationSigner(KEY).sign(
        HeartbeatRequest(service="user-service", instance_id="user-1"), time.time()
    )
    forged = msgspec.structs.replace(signed, signature="0" * 64)

    reply = await registry.send(forged)
    with pytest.raises(PermissionError, match="heartbeat refused: unsigned"):
        await registry.rogue.heartbeat("user-service", "user-1")

    assert (reply.ok, reply.code) == (False, "forbidden")
    assert await registry.stored() == [real]
    assert registry.refusals() == [("heartbeat", "bad signature"), ("heartbeat", "unsigned")]


async def test_unsigned_deregistrations_and_status_reports_change_nothing(
    registry: SignedRegistry,
) -> None:
    real = await registry.owner.register(instance(), ttl=60)

    with pytest.raises(PermissionError, match="deregister refused"):
        await registry.rogue.deregister("user-service", "user-1")
    with pytest.raises(PermissionError, match="status refused"):
        await registry.rogue.set_status("user-service", "user-1", InstanceStatus.DOWN)

    assert await registry.stored() == [real]
    assert await registry.broadcast_so_far() == [("registered", "user-1")]
    assert registry.refusals() == [("deregister", "unsigned"), ("status", "unsigned")]


async def test_a_service_registry_with_the_key_registers_and_keeps_its_lease(
    registry: SignedRegistry,
) -> None:
    config = {"name": "order-service", "port": 4001}
    async with ServiceRegistry(config, registry.owner, ttl=1.5) as service:
        first = await service.register()
        with anyio.fail_after(3):  # heartbeats every ttl / 3
            renewed = first
            while renewed.last_heartbeat == first.last_heartbeat:
                await anyio.sleep(0.05)
                [renewed] = await registry.stored("order-service")
    assert await registry.stored("order-service") == []
    assert registry.refusals() == []


async def test_a_service_registry_without_the_key_is_refused_at_once(
    registry: SignedRegistry,
) -> None:
    config = {"name": "order-service", "port": 4001}
    async with ServiceRegistry(config, registry.rogue) as service:
        with pytest.raises(PermissionError, match="unsigned"):
            await service.register()
    assert await registry.stored("order-service") == []


@pytest.mark.parametrize("checker_key", [KEY, None], ids=["with-key", "without-key"])
async def test_the_health_checker_needs_the_key_to_report_an_instance_down(
    registry: SignedRegistry, checker_key: bytes | None
) -> None:
    async with health_endpoint("fail") as endpoint:
        bus = await registry.stack.enter_async_context(
            await Bus.connect(registry.server.url, prefix=registry.raw.subjects.prefix)
        )
        signer = None if checker_key is None else RegistrationSigner(checker_key)
        checker = HealthChecker(
            bus,
            services=("user-service",),
            unhealthy_threshold=1,
            default_interval=0.05,
            timeout=1.0,
            signer=signer,
        )
        await registry.owner.register(instance(host="127.0.0.1", port=endpoint.port), ttl=60)
        async with anyio.create_task_group() as tg:
            await tg.start(checker.run)
            with anyio.fail_after(4):
                while not registry.refusals() and (  # noqa: ASYNC110 - polling the registry
                    (await registry.stored())[0].status is InstanceStatus.UP
                ):
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    status = (await registry.stored())[0].status
    if checker_key is None:
        assert status is InstanceStatus.UP
        assert ("status", "unsigned") in registry.refusals()
    else:
        assert status is InstanceStatus.DOWN
        assert registry.refusals() == []
