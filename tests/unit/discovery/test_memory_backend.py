"""`MemoryRegistryBackend`: the shared backend contract, plus the lease
arithmetic it does exactly (no rounding: deadlines are plain floats)."""

from __future__ import annotations

import pytest

from meshgate.bus.instance import InstanceStatus
from meshgate.discovery.backends import MemoryRegistryBackend
from meshgate.resilience.clock import ManualClock
from tests.unit.discovery.backend_contract import START, BackendContract, instance


class TestMemoryBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, clock: ManualClock) -> MemoryRegistryBackend:
        return MemoryRegistryBackend(clock=clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(100.0)


@pytest.fixture
def backend(clock: ManualClock) -> MemoryRegistryBackend:
    return MemoryRegistryBackend(clock=clock)


@pytest.mark.anyio
async def test_a_lease_ends_exactly_at_registration_plus_ttl(
    backend: MemoryRegistryBackend, clock: ManualClock
) -> None:
    await backend.register(instance(), ttl=0.25)

    clock.advance(0.125)
    assert len(await backend.get_instances("user-service")) == 1
    clock.advance(0.125)
    assert await backend.get_instances("user-service") == []


@pytest.mark.anyio
async def test_each_heartbeat_restarts_the_lease_from_its_own_time(
    backend: MemoryRegistryBackend, clock: ManualClock
) -> None:
    await backend.register(instance(), ttl=3)
    for _ in range(10):
        clock.advance(2.5)
        beat = await backend.heartbeat("user-service", "user-1")
        assert beat is not None
        assert beat.last_heartbeat == clock()

    # registered at 100, last heartbeat at 125: the lease ends at 128
    clock.advance(2.5)
    assert len(await backend.get_instances("user-service")) == 1
    clock.advance(0.5)
    assert await backend.get_instances("user-service") == []


@pytest.mark.anyio
async def test_leases_of_one_service_run_independently(
    backend: MemoryRegistryBackend, clock: ManualClock
) -> None:
    await backend.register(instance("short"), ttl=1)
    await backend.register(instance("long"), ttl=4)

    clock.advance(1)
    assert [i.id for i in await backend.get_instances("user-service")] == ["long"]
    assert [i.id for i in await backend.expire()] == ["short"]
    clock.advance(3)
    assert [i.id for i in await backend.expire()] == ["long"]
    assert await backend.get_services() == []


@pytest.mark.anyio
async def test_expired_instances_are_hidden_before_expire_collects_them(
    backend: MemoryRegistryBackend, clock: ManualClock
) -> None:
    await backend.register(instance(), ttl=1)
    clock.advance(5)

    assert await backend.get_instances("user-service") == []
    assert await backend.get_services() == []
    assert await backend.set_status("user-service", "user-1", InstanceStatus.UP) is None
    [expired] = await backend.expire()
    assert expired.last_heartbeat == 100.0


@pytest.mark.anyio
async def test_expire_orders_equal_deadlines_by_service_then_id(
    backend: MemoryRegistryBackend, clock: ManualClock
) -> None:
    await backend.register(instance("b", name="user-service"), ttl=1)
    await backend.register(instance("a", name="user-service"), ttl=1)
    await backend.register(instance("z", name="order-service"), ttl=1)
    clock.advance(1)

    expired = await backend.expire()

    assert [(i.name, i.id) for i in expired] == [
        ("order-service", "z"),
        ("user-service", "a"),
        ("user-service", "b"),
    ]


@pytest.mark.anyio
async def test_the_default_clock_is_the_wall_clock() -> None:
    import time

    before = time.time()
    stored = await MemoryRegistryBackend().register(instance(), ttl=30)

    assert before <= stored.last_heartbeat <= time.time()
    assert stored.registered_at > START
