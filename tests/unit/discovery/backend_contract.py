"""The behaviour every lease-keeping registry backend shares (memory, Redis).

A test module subclasses `BackendContract` and provides a `backend` fixture
built on the `clock` fixture below; every check then runs against that
backend. The clock is a `ManualClock`, so leases are exact: a test moves
time to just before a deadline (`TICK`), then onto it.
"""

from __future__ import annotations

from typing import Any

import pytest

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends.protocol import RegistryBackend
from meshgate.resilience.clock import ManualClock

START = 1_700_000_000.0
TTL = 10.0
# Just under a millisecond, and a power of two so that `START + TTL - TICK`
# is exact in binary: leases are compared without rounding noise.
TICK = 2.0**-10


def instance(
    instance_id: str = "user-1", name: str = "user-service", **fields: Any
) -> ServiceInstance:
    """A `user-service` instance at 10.0.0.5:3001 unless `fields` say otherwise."""
    return ServiceInstance(
        **{"host": "10.0.0.5", "port": 3001, **fields}, id=instance_id, name=name
    )


class BackendContract:
    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(START)

    @pytest.mark.anyio
    async def test_satisfies_the_registry_backend_protocol(self, backend: RegistryBackend) -> None:
        assert isinstance(backend, RegistryBackend)

    @pytest.mark.anyio
    async def test_register_returns_the_instance_stamped_with_the_clock(
        self, backend: RegistryBackend
    ) -> None:
        stored = await backend.register(instance(), ttl=TTL)

        assert stored == ServiceInstance(
            id="user-1",
            name="user-service",
            host="10.0.0.5",
            port=3001,
            registered_at=START,
            last_heartbeat=START,
        )
        assert await backend.get_instances("user-service") == [stored]

    @pytest.mark.anyio
    async def test_register_keeps_a_registration_time_the_caller_set(
        self, backend: RegistryBackend
    ) -> None:
        stored = await backend.register(instance(registered_at=START - 300), ttl=TTL)

        assert stored.registered_at == START - 300
        assert stored.last_heartbeat == START

    @pytest.mark.anyio
    async def test_every_field_survives_the_round_trip(self, backend: RegistryBackend) -> None:
        full = instance(
            zone="us-east-1a",
            tags=("api", "users", "v2"),
            metadata={"version": "2.0.0", "weight": 80, "ratio": 0.25, "canary": True},
            status=InstanceStatus.STARTING,
            health_check_path="/ready",
            health_check_interval=5.5,
        )
        stored = await backend.register(full, ttl=TTL)

        [found] = await backend.get_instances("user-service")
        assert found == stored
        assert found.metadata == {"version": "2.0.0", "weight": 80, "ratio": 0.25, "canary": True}
        assert found.status is InstanceStatus.STARTING

    @pytest.mark.anyio
    async def test_register_rejects_a_lease_that_is_not_positive(
        self, backend: RegistryBackend
    ) -> None:
        with pytest.raises(ValueError, match="ttl=0"):
            await backend.register(instance(), ttl=0)

    @pytest.mark.anyio
    async def test_get_instances_lists_live_instances_ordered_by_id(
        self, backend: RegistryBackend
    ) -> None:
        for instance_id in ("user-3", "user-1", "user-2"):
            await backend.register(instance(instance_id), ttl=TTL)

        found = await backend.get_instances("user-service")

        assert [i.id for i in found] == ["user-1", "user-2", "user-3"]
        assert await backend.get_instances("order-service") == []

    @pytest.mark.anyio
    async def test_instances_of_different_services_are_kept_apart(
        self, backend: RegistryBackend
    ) -> None:
        await backend.register(instance("a-1", name="user-service"), ttl=TTL)
        await backend.register(instance("a-1", name="order-service", port=4000), ttl=TTL)

        await backend.deregister("user-service", "a-1")

        assert await backend.get_instances("user-service") == []
        [order] = await backend.get_instances("order-service")
        assert order.port == 4000

    @pytest.mark.anyio
    async def test_registering_again_replaces_the_instance_and_its_lease(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        await backend.register(instance(), ttl=TTL)
        clock.advance(8)
        replaced = await backend.register(instance(port=3002), ttl=30)

        clock.advance(30 - TICK)
        assert await backend.get_instances("user-service") == [replaced]
        clock.advance(TICK)
        assert await backend.get_instances("user-service") == []

    @pytest.mark.anyio
    async def test_an_instance_is_live_until_its_deadline_and_gone_at_it(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        await backend.register(instance(), ttl=TTL)

        clock.advance(TTL - TICK)
        assert [i.id for i in await backend.get_instances("user-service")] == ["user-1"]
        assert await backend.get_services() == ["user-service"]
        clock.advance(TICK)
        assert await backend.get_instances("user-service") == []
        assert await backend.get_services() == []

    @pytest.mark.anyio
    async def test_heartbeat_moves_the_deadline_to_now_plus_the_ttl(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        await backend.register(instance(), ttl=TTL)
        clock.advance(7.5)

        renewed = await backend.heartbeat("user-service", "user-1")

        assert renewed is not None
        assert renewed.last_heartbeat == START + 7.5
        assert renewed.registered_at == START
        clock.advance(TTL - TICK)
        assert await backend.get_instances("user-service") == [renewed]
        clock.advance(TICK)
        assert await backend.get_instances("user-service") == []

    @pytest.mark.anyio
    async def test_heartbeat_after_the_deadline_is_refused_and_leaves_it_to_expire(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        stored = await backend.register(instance(), ttl=TTL)
        clock.advance(TTL)

        assert await backend.heartbeat("user-service", "user-1") is None
        assert await backend.expire() == [stored]

    @pytest.mark.anyio
    async def test_heartbeat_of_an_unknown_instance_returns_none(
        self, backend: RegistryBackend
    ) -> None:
        await backend.register(instance(), ttl=TTL)

        assert await backend.heartbeat("user-service", "user-9") is None
        assert await backend.heartbeat("order-service", "user-1") is None

    @pytest.mark.anyio
    async def test_set_status_records_the_status_without_renewing_the_lease(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        await backend.register(instance(), ttl=TTL)
        clock.advance(6)

        updated = await backend.set_status("user-service", "user-1", InstanceStatus.DOWN)

        assert updated is not None
        assert updated.status is InstanceStatus.DOWN
        assert updated.last_heartbeat == START
        assert await backend.get_instances("user-service") == [updated]
        clock.advance(4)
        assert await backend.get_instances("user-service") == []

    @pytest.mark.anyio
    async def test_heartbeat_keeps_the_recorded_status(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        await backend.register(instance(), ttl=TTL)
        await backend.set_status("user-service", "user-1", InstanceStatus.OUT_OF_SERVICE)
        clock.advance(1)

        renewed = await backend.heartbeat("user-service", "user-1")

        assert renewed is not None
        assert renewed.status is InstanceStatus.OUT_OF_SERVICE

    @pytest.mark.anyio
    async def test_set_status_of_an_unknown_or_expired_instance_returns_none(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        await backend.register(instance(), ttl=TTL)

        assert await backend.set_status("user-service", "user-9", InstanceStatus.UP) is None
        clock.advance(TTL)
        assert await backend.set_status("user-service", "user-1", InstanceStatus.UP) is None

    @pytest.mark.anyio
    async def test_deregister_removes_and_returns_the_instance(
        self, backend: RegistryBackend
    ) -> None:
        stored = await backend.register(instance(), ttl=TTL)

        assert await backend.deregister("user-service", "user-1") == stored
        assert await backend.deregister("user-service", "user-1") is None
        assert await backend.get_instances("user-service") == []
        assert await backend.get_services() == []
        assert await backend.expire() == []

    @pytest.mark.anyio
    async def test_deregister_of_an_expired_instance_returns_it_and_expire_skips_it(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        stored = await backend.register(instance(), ttl=TTL)
        clock.advance(TTL + 1)

        assert await backend.deregister("user-service", "user-1") == stored
        assert await backend.expire() == []

    @pytest.mark.anyio
    async def test_expire_removes_each_expired_instance_once_oldest_deadline_first(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        first = await backend.register(instance("user-2"), ttl=5)
        second = await backend.register(instance("order-1", name="order-service"), ttl=8)
        live = await backend.register(instance("user-1"), ttl=20)

        clock.advance(5 - TICK)
        assert await backend.expire() == []
        clock.advance(3 + TICK)
        assert await backend.expire() == [first, second]
        assert await backend.expire() == []
        assert await backend.get_instances("user-service") == [live]
        assert await backend.get_services() == ["user-service"]

    @pytest.mark.anyio
    async def test_get_services_lists_services_with_a_live_instance(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        await backend.register(instance("u-1", name="user-service"), ttl=TTL)
        await backend.register(instance("o-1", name="order-service"), ttl=30)
        await backend.register(instance("p-1", name="payment-service"), ttl=30)
        await backend.deregister("payment-service", "p-1")

        assert await backend.get_services() == ["order-service", "user-service"]
        clock.advance(TTL)
        assert await backend.get_services() == ["order-service"]

    @pytest.mark.anyio
    async def test_the_whole_life_of_an_instance(
        self, backend: RegistryBackend, clock: ManualClock
    ) -> None:
        registered = await backend.register(instance(metadata={"version": "2.0.0"}), ttl=TTL)
        assert await backend.get_instances("user-service") == [registered]

        clock.advance(5)
        beat = await backend.heartbeat("user-service", "user-1")
        assert beat is not None
        assert beat.last_heartbeat == START + 5

        down = await backend.set_status("user-service", "user-1", InstanceStatus.DOWN)
        assert down is not None
        assert down.status is InstanceStatus.DOWN
        assert down.last_heartbeat == START + 5

        assert await backend.deregister("user-service", "user-1") == down
        assert await backend.get_instances("user-service") == []

        again = await backend.register(instance(), ttl=TTL)
        clock.advance(TTL)
        assert await backend.expire() == [again]
        assert await backend.get_services() == []
