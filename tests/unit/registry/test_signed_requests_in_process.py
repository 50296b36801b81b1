"""Signed registry requests over an `InProcessBus` on manual clocks, under
asyncio and trio: the client stamps requests with its clock, the node judges
freshness by its own, and a node without a key accepts anything as before.
(Refusals over a real nats-server: tests/integration/test_signed_registrations.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import pytest

from meshgate.bus.in_process import InProcessBus
from meshgate.bus.messages import HeartbeatRequest, Reply
from meshgate.bus.signing import RegistrationSigner
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.resilience.clock import ManualClock
from registry_node.service import RegistryService
from tests.unit.discovery.backend_contract import START, instance

pytestmark = pytest.mark.anyio

KEY = b"unit-test-registration-key"
MAX_SKEW = 30.0


@dataclass
class Node:
    bus: InProcessBus
    service: RegistryService
    clock: ManualClock


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    clock = ManualClock(START)
    async with InProcessBus() as bus, anyio.create_task_group() as tg:
        service = RegistryService(
            bus,
            MemoryRegistryBackend(clock=clock),
            sweep_interval=3600,
            clock=clock,
            signer=RegistrationSigner(KEY, max_skew=MAX_SKEW),
        )
        await tg.start(service.run)
        yield Node(bus, service, clock)
        tg.cancel_scope.cancel()


async def test_the_client_signs_each_request_stamped_with_its_clock() -> None:
    received: list[HeartbeatRequest] = []

    async def record(request: HeartbeatRequest) -> Reply:
        received.append(request)
        return Reply(ok=False, code="not_found")

    async with InProcessBus() as bus:
        await bus.serve(bus.subjects.registry_heartbeat, HeartbeatRequest, record)
        client = RegistryClient(
            bus, signer=RegistrationSigner(KEY), clock=ManualClock(START + 12.5)
        )
        await client.heartbeat("user-service", "user-1")

    assert client.signs_requests
    assert received[0].signed_at == START + 12.5
    RegistrationSigner(KEY).verify(received[0], now=START + 12.5)


async def test_freshness_is_judged_by_the_nodes_clock(node: Node) -> None:
    client_clock = ManualClock(START)
    client = RegistryClient(node.bus, signer=RegistrationSigner(KEY), clock=client_clock)
    await client.register(instance(), ttl=300)

    node.clock.advance(MAX_SKEW + 1)  # the client's clock now lags the node's

    with pytest.raises(PermissionError, match="heartbeat refused: stale"):
        await client.heartbeat("user-service", "user-1")
    client_clock.advance(MAX_SKEW + 1)
    assert await client.heartbeat("user-service", "user-1") is not None


async def test_a_node_without_a_key_accepts_signed_and_unsigned_requests() -> None:
    async with InProcessBus() as bus, anyio.create_task_group() as tg:
        service = RegistryService(bus, MemoryRegistryBackend(), sweep_interval=3600)
        await tg.start(service.run)
        signed = RegistryClient(bus, signer=RegistrationSigner(KEY))
        unsigned = RegistryClient(bus)

        await signed.register(instance("user-1"), ttl=10)
        await unsigned.register(instance("user-2"), ttl=10)

        assert not service.requires_signatures
        assert [i.id for i in await unsigned.get_instances("user-service")] == ["user-1", "user-2"]
        tg.cancel_scope.cancel()
