"""`DiscoveryClient`: filters, load-balanced picks, the cache (by age, by watch
events), and serving last-known instances while the backend is down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import structlog.testing

from meshgate.bus.errors import NoRespondersError
from meshgate.bus.in_process import InProcessBus
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import RegistryEvent, RegistryEventKind
from meshgate.bus.protocol import Subscription
from meshgate.discovery import discovery_client as discovery_module
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.backends.protocol import RegistryEventHandler, WatchableBackend
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.round_robin import RoundRobinBalancer
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.discovery.errors import RegistryUnavailableError
from meshgate.resilience.clock import ManualClock

pytestmark = pytest.mark.anyio

SERVICE = "user-service"
TTL = 1000.0  # leases outlive every test: the client's clock is the one that moves


def instance(
    instance_id: str,
    *,
    status: InstanceStatus = InstanceStatus.UP,
    name: str = SERVICE,
    **fields: Any,
) -> ServiceInstance:
    port = fields.pop("port", 3000 + len(instance_id))
    return ServiceInstance(
        id=instance_id, name=name, host="10.0.0.5", port=port, status=status, **fields
    )


class CountingBackend(MemoryRegistryBackend):
    """The memory backend, counting reads, and failing them while `down` is set."""

    def __init__(self) -> None:
        super().__init__(clock=ManualClock(1_700_000_000.0))
        self.reads = 0
        self.down: Exception | None = None

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        self.reads += 1
        if self.down is not None:
            raise self.down
        return await super().get_instances(service)


class BusWatchedBackend(CountingBackend):
    """What the bus client of registry nodes looks like to the discovery client:
    every change is broadcast on the bus, and `watch` subscribes to it."""

    def __init__(self, bus: InProcessBus) -> None:
        super().__init__()
        self.bus = bus
        self.watch_failures = 0

    async def _announce(self, kind: RegistryEventKind, stored: ServiceInstance | None) -> None:
        if stored is not None:
            event = RegistryEvent(kind=kind, instance=stored, at=1_700_000_000.0)
            await self.bus.publish(self.bus.subjects.registry_events(stored.name), event)

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        stored = await super().register(instance, ttl=ttl)
        await self._announce("registered", stored)
        return stored

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        removed = await super().deregister(service, instance_id)
        await self._announce("deregistered", removed)
        return removed

    async def set_status(
        self, service: str, instance_id: str, status: InstanceStatus
    ) -> ServiceInstance | None:
        updated = await super().set_status(service, instance_id, status)
        await self._announce("status", updated)
        return updated

    async def expire_now(self, service: str, instance_id: str) -> None:
        removed = await super().deregister(service, instance_id)
        await self._announce("expired", removed)

    async def watch(self, handler: RegistryEventHandler) -> Subscription:
        if self.watch_failures:
            self.watch_failures -= 1
            raise NoRespondersError("mesh.events.registry.*")
        return await self.bus.subscribe(
            self.bus.subjects.all_registry_events, RegistryEvent, handler
        )


class SteppedSleep:
    """A sleep that ends only when the test says so, and records what was asked."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self._pending: list[anyio.Event] = []
        self._arrived: anyio.Event | None = None

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        done = anyio.Event()
        self._pending.append(done)
        if self._arrived is not None:
            self._arrived.set()
        await done.wait()

    async def until_sleeping(self) -> None:
        """Return once the code under test is asleep."""
        while not self._pending:
            self._arrived = anyio.Event()
            await self._arrived.wait()

    async def wake(self) -> None:
        """End the oldest sleep, then wait until the code sleeps again."""
        await self.until_sleeping()
        self._pending.pop(0).set()
        await self.until_sleeping()


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (a second at most) for something the bus's tasks do."""
    with anyio.fail_after(1):
        while not condition():
            await anyio.wait_all_tasks_blocked()


@asynccontextmanager
async def watched() -> AsyncIterator[BusWatchedBackend]:
    async with InProcessBus() as bus:
        yield BusWatchedBackend(bus)


@pytest.fixture
def backend() -> CountingBackend:
    return CountingBackend()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0.0)


async def register(backend: MemoryRegistryBackend, *instances: ServiceInstance) -> None:
    for each in instances:
        await backend.register(each, ttl=TTL)


# -- get_instances: filters ------------------------------------------------------


async def test_get_instances_filters_only_on_what_is_given(backend: CountingBackend) -> None:
    await register(
        backend,
        instance("a", zone="us-east-1", tags=("api", "v1"), metadata={"version": "1.0.0"}),
        instance("b", zone="us-east-1", tags=("api", "v2"), metadata={"version": "2.0.0"}),
        instance("c", zone="eu-west-1", tags=("api", "v2"), status=InstanceStatus.DOWN),
    )
    client = DiscoveryClient(backend)

    def ids(found: Sequence[ServiceInstance]) -> list[str]:
        return [i.id for i in found]

    assert ids(await client.get_instances(SERVICE)) == ["a", "b", "c"]
    assert ids(await client.get_instances(SERVICE, zone="us-east-1")) == ["a", "b"]
    assert ids(await client.get_instances(SERVICE, tags=["v2"])) == ["b", "c"]
    assert ids(await client.get_instances(SERVICE, tags=["api", "v2"], zone="eu-west-1")) == ["c"]
    assert ids(await client.get_instances(SERVICE, metadata={"version": "2.0.0"})) == ["b"]
    assert ids(await client.get_instances(SERVICE, status=InstanceStatus.UP)) == ["a", "b"]
    assert ids(await client.get_instances(SERVICE, status="DOWN")) == ["c"]
    assert await client.get_instances(SERVICE, metadata={"missing": "x"}) == []


async def test_get_instances_of_an_unknown_service_is_empty(backend: CountingBackend) -> None:
    assert await DiscoveryClient(backend).get_instances("nobody") == []


async def test_get_instances_returns_them_sorted_by_id_whatever_the_backend_order() -> None:
    class Unsorted(CountingBackend):
        async def get_instances(self, service: str) -> list[ServiceInstance]:
            return list(reversed(await super().get_instances(service)))

    backend = Unsorted()
    await register(backend, instance("b"), instance("a"), instance("c"))

    found = await DiscoveryClient(backend).get_instances(SERVICE)

    assert [i.id for i in found] == ["a", "b", "c"]


# -- get_instance: load balancing -----------------------------------------------


async def test_get_instance_picks_round_robin_among_up_instances_only(
    backend: CountingBackend,
) -> None:
    await register(backend, instance("a"), instance("b", status=InstanceStatus.DOWN), instance("c"))
    client = DiscoveryClient(backend)

    picked = [(await client.get_instance(SERVICE)) for _ in range(4)]

    assert [i.id for i in picked if i is not None] == ["a", "c", "a", "c"]


async def test_get_instance_is_none_when_no_instance_is_up(backend: CountingBackend) -> None:
    await register(backend, instance("a", status=InstanceStatus.STARTING))
    client = DiscoveryClient(backend)

    assert await client.get_instance(SERVICE) is None
    assert await client.get_instance("nobody") is None


async def test_get_instance_skips_excluded_ids(backend: CountingBackend) -> None:
    await register(backend, instance("a"), instance("b"))
    client = DiscoveryClient(backend)

    for _ in range(3):
        chosen = await client.get_instance(SERVICE, exclude={"a"})
        assert chosen is not None
        assert chosen.id == "b"
    assert await client.get_instance(SERVICE, exclude=["a", "b"]) is None


async def test_weighted_picks_keep_their_weights_when_retries_exclude_a_failing_instance(
    backend: CountingBackend,
) -> None:
    await register(
        backend,
        instance("a", metadata={"weight": 3}),
        instance("b", metadata={"weight": 2}),
        instance("c", metadata={"weight": 1}),
    )
    client = DiscoveryClient(backend)
    first: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    served: dict[str, int] = {"a": 0, "b": 0, "c": 0}

    for _ in range(600):
        chosen = await client.get_instance(SERVICE, "weighted-round-robin")
        assert chosen is not None
        first[chosen.id] += 1
        if chosen.id == "c":  # c fails; the retry, as ServiceClient makes it, excludes it
            chosen = await client.get_instance(SERVICE, "weighted-round-robin", exclude={"c"})
            assert chosen is not None
        served[chosen.id] += 1

    assert first == {"a": 300, "b": 200, "c": 100}
    assert served == {"a": 360, "b": 240, "c": 0}


async def test_there_is_one_balancer_per_service_and_strategy(backend: CountingBackend) -> None:
    client = DiscoveryClient(backend)

    assert client.balancer(SERVICE, "random") is client.balancer(SERVICE, "random")
    assert client.balancer(SERVICE, "random") is not client.balancer("other", "random")
    assert client.balancer(SERVICE, "random") is not client.balancer(SERVICE, "round-robin")


async def test_the_balancer_is_handed_the_same_tuple_while_the_set_is_unchanged(
    backend: CountingBackend, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Sequence[ServiceInstance]] = []

    class Recording(RoundRobinBalancer):
        def pick(
            self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
        ) -> ServiceInstance | None:
            seen.append(instances)
            return super().pick(instances, client_ip=client_ip)

    def make(strategy: str, **options: Any) -> LoadBalancer:
        return Recording()

    monkeypatch.setattr(discovery_module, "create_balancer", make)
    await register(backend, instance("a"), instance("b"))
    client = DiscoveryClient(backend, cache_ttl=10.0, clock=clock)

    await client.get_instance(SERVICE)
    await client.get_instance(SERVICE)
    clock.advance(10.0)  # aged out: read again, and nothing changed
    await client.get_instance(SERVICE)

    assert backend.reads == 2
    assert isinstance(seen[0], tuple)
    assert seen[1] is seen[0]
    assert seen[2] is seen[0]


async def test_zone_aware_prefers_the_clients_own_zone(backend: CountingBackend) -> None:
    await register(
        backend,
        instance("far", zone="us-east-1"),
        instance("near-1", zone="eu-west-1"),
        instance("near-2", zone="eu-west-1"),
    )
    client = DiscoveryClient(backend, zone="eu-west-1")

    picked = [await client.get_instance(SERVICE, "zone-aware") for _ in range(6)]

    assert {i.id for i in picked if i is not None} == {"near-1", "near-2"}


async def test_zone_aware_on_a_client_without_a_zone_is_a_clear_value_error(
    backend: CountingBackend,
) -> None:
    with pytest.raises(ValueError, match=r"zone-aware.*needs the client's own zone"):
        await DiscoveryClient(backend).get_instance(SERVICE, "zone-aware")


async def test_an_unknown_strategy_is_a_value_error_naming_it(backend: CountingBackend) -> None:
    with pytest.raises(ValueError, match="strategy='fastest' is not allowed"):
        await DiscoveryClient(backend).get_instance(SERVICE, "fastest")


async def test_ip_hash_sends_one_client_to_one_instance(backend: CountingBackend) -> None:
    await register(backend, *(instance(f"i{n}") for n in range(5)))
    client = DiscoveryClient(backend)

    chosen = [
        await client.get_instance(SERVICE, "ip-hash", client_ip="203.0.113.7") for _ in range(5)
    ]

    assert len({i.id for i in chosen if i is not None}) == 1


# -- the cache, by age -----------------------------------------------------------


async def test_reads_within_cache_ttl_do_not_ask_the_backend(
    backend: CountingBackend, clock: ManualClock
) -> None:
    await register(backend, instance("a"))
    client = DiscoveryClient(backend, cache_ttl=30.0, clock=clock)

    await client.get_instances(SERVICE)
    clock.advance(29.9)
    await client.get_instance(SERVICE)

    assert backend.reads == 1
    assert client.stats.cache_hits == 1
    assert client.stats.refreshes == 1


async def test_an_entry_as_old_as_cache_ttl_is_read_again(
    backend: CountingBackend, clock: ManualClock
) -> None:
    await register(backend, instance("a"))
    client = DiscoveryClient(backend, cache_ttl="30s", clock=clock)
    await client.get_instances(SERVICE)
    await register(backend, instance("b"))

    clock.advance(30.0)
    found = await client.get_instances(SERVICE)

    assert [i.id for i in found] == ["a", "b"]
    assert backend.reads == 2


async def test_with_the_cache_disabled_every_read_asks_the_backend(
    backend: CountingBackend,
) -> None:
    await register(backend, instance("a"))
    client = DiscoveryClient(backend, cache_enabled=False)

    for _ in range(3):
        await client.get_instance(SERVICE)

    assert backend.reads == 3


async def test_refresh_and_invalidate_read_the_backend_again(
    backend: CountingBackend, clock: ManualClock
) -> None:
    await register(backend, instance("a"))
    client = DiscoveryClient(backend, clock=clock)
    await client.get_instances(SERVICE)
    await register(backend, instance("b"))

    assert [i.id for i in await client.refresh(SERVICE)] == ["a", "b"]
    client.invalidate()
    await client.get_instances(SERVICE)

    assert backend.reads == 3


async def test_concurrent_reads_of_an_uncached_service_share_one_backend_read() -> None:
    release = anyio.Event()

    class Slow(CountingBackend):
        async def get_instances(self, service: str) -> list[ServiceInstance]:
            await release.wait()
            return await super().get_instances(service)

    backend = Slow()
    await register(backend, instance("a"))
    client = DiscoveryClient(backend)
    picked: list[ServiceInstance | None] = []

    async def pick() -> None:
        picked.append(await client.get_instance(SERVICE))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(pick)
        await anyio.wait_all_tasks_blocked()
        release.set()

    assert backend.reads == 1
    assert [i.id for i in picked if i is not None] == ["a"] * 5


# -- outages: serve the last-known instances ------------------------------------


async def test_an_outage_serves_the_last_known_instances_and_logs_it_once(
    backend: CountingBackend, clock: ManualClock
) -> None:
    await register(backend, instance("a"), instance("b"))
    client = DiscoveryClient(backend, cache_ttl=10.0, stale_retry_interval=5.0, clock=clock)
    await client.get_instances(SERVICE)
    backend.down = ConnectionError("registry unreachable")

    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            clock.advance(10.0)
            chosen = await client.get_instance(SERVICE)
            assert chosen is not None

    stale = [entry for entry in logs if entry["event"] == "discovery.serving_stale"]
    assert len(stale) == 1
    assert stale[0]["service"] == SERVICE
    assert "registry unreachable" in stale[0]["error"]
    assert stale[0]["log_level"] == "warning"
    assert client.stats.stale_serves == 3
    assert client.stats.refresh_failures == 3


async def test_during_an_outage_the_backend_is_asked_again_only_after_the_retry_interval(
    backend: CountingBackend, clock: ManualClock
) -> None:
    await register(backend, instance("a"))
    client = DiscoveryClient(backend, cache_ttl=10.0, stale_retry_interval=5.0, clock=clock)
    await client.get_instances(SERVICE)
    backend.down = NoRespondersError("mesh.registry.query")
    clock.advance(10.0)
    await client.get_instances(SERVICE)  # fails: starts the outage
    reads = backend.reads

    clock.advance(4.9)
    for _ in range(10):
        assert [i.id for i in await client.get_instances(SERVICE)] == ["a"]
    assert backend.reads == reads

    clock.advance(0.1)
    await client.get_instances(SERVICE)
    assert backend.reads == reads + 1
    assert client.stats.stale_serves == 12


async def test_after_an_outage_fresh_instances_are_served_and_recovery_is_logged(
    backend: CountingBackend, clock: ManualClock
) -> None:
    await register(backend, instance("a"))
    client = DiscoveryClient(backend, cache_ttl=10.0, stale_retry_interval=1.0, clock=clock)
    await client.get_instances(SERVICE)
    backend.down = ConnectionError("down")
    clock.advance(10.0)
    await client.get_instances(SERVICE)

    backend.down = None
    await register(backend, instance("b"))
    clock.advance(1.0)
    with structlog.testing.capture_logs() as logs:
        found = await client.get_instances(SERVICE)
        backend.down = ConnectionError("down again")
        clock.advance(10.0)
        await client.get_instances(SERVICE)

    assert [i.id for i in found] == ["a", "b"]
    events = [entry["event"] for entry in logs]
    # a new outage is logged again
    assert events == ["discovery.recovered", "discovery.instance_up", "discovery.serving_stale"]


async def test_a_service_never_seen_fails_with_registry_unavailable_during_an_outage(
    backend: CountingBackend,
) -> None:
    backend.down = NoRespondersError("mesh.registry.query")
    client = DiscoveryClient(backend)

    with pytest.raises(RegistryUnavailableError, match="user-service") as caught:
        await client.get_instance(SERVICE)

    assert isinstance(caught.value.__cause__, NoRespondersError)
    assert caught.value.service == SERVICE
    assert client.stats.refresh_failures == 1


async def test_a_registry_unavailable_error_from_the_backend_is_raised_as_is(
    backend: CountingBackend,
) -> None:
    error = RegistryUnavailableError("no registry node", service=SERVICE)
    backend.down = error

    with pytest.raises(RegistryUnavailableError) as caught:
        await DiscoveryClient(backend).get_instances(SERVICE)

    assert caught.value is error


async def test_with_the_cache_disabled_an_outage_still_serves_the_last_answer(
    backend: CountingBackend,
) -> None:
    await register(backend, instance("a"))
    client = DiscoveryClient(backend, cache_enabled=False)
    await client.get_instances(SERVICE)
    backend.down = ConnectionError("down")

    chosen = await client.get_instance(SERVICE)

    assert chosen is not None
    assert chosen.id == "a"
    assert client.stats.stale_serves == 1


# -- watch events ---------------------------------------------------------------


async def test_a_watchable_backend_is_recognised() -> None:
    async with watched() as backend:
        assert isinstance(backend, WatchableBackend)


async def test_watch_events_change_the_cache_at_once_without_reading_the_backend(
    clock: ManualClock,
) -> None:
    async with watched() as backend, DiscoveryClient(backend, clock=clock) as client:
        assert client.is_watching
        await register(backend, instance("a"), instance("b"))
        await client.get_instances(SERVICE)
        reads = backend.reads

        await register(backend, instance("c"))
        await eventually(lambda: client.stats.events_applied == 1)
        assert [i.id for i in await client.get_instances(SERVICE)] == ["a", "b", "c"]

        await backend.deregister(SERVICE, "a")
        await backend.expire_now(SERVICE, "b")
        await eventually(lambda: client.stats.events_applied == 3)
        assert [i.id for i in await client.get_instances(SERVICE)] == ["c"]

        await backend.set_status(SERVICE, "c", InstanceStatus.DOWN)
        await eventually(lambda: client.stats.events_applied == 4)
        assert await client.get_instance(SERVICE) is None
        assert [i.status for i in await client.get_instances(SERVICE)] == [InstanceStatus.DOWN]

        assert backend.reads == reads


async def test_while_watching_entries_do_not_age_out(clock: ManualClock) -> None:
    async with watched() as backend, DiscoveryClient(backend, cache_ttl=1.0, clock=clock) as client:
        await register(backend, instance("a"))
        await client.get_instances(SERVICE)

        clock.advance(3600.0)
        await client.get_instances(SERVICE)

        assert backend.reads == 1


async def test_events_of_services_the_client_does_not_use_are_ignored() -> None:
    async with watched() as backend, DiscoveryClient(backend) as client:
        await register(backend, instance("a"))
        await register(backend, instance("x", name="other-service"))
        await client.get_instances(SERVICE)
        await register(backend, instance("y", name="other-service"))
        await register(backend, instance("b"))

        await eventually(lambda: client.stats.events_applied == 1)
        assert [i.id for i in await client.get_instances("other-service")] == ["x", "y"]


async def test_leaving_the_client_stops_watching() -> None:
    async with watched() as backend:
        async with DiscoveryClient(backend) as client:
            await register(backend, instance("a"))
            await client.get_instances(SERVICE)
        assert not client.is_watching

        await register(backend, instance("b"))
        await anyio.wait_all_tasks_blocked()

        assert client.stats.events_applied == 0


async def test_a_watch_that_fails_at_first_does_not_block_entering_and_is_retried() -> None:
    sleep = SteppedSleep()
    async with watched() as backend:
        backend.watch_failures = 1
        with structlog.testing.capture_logs() as logs:
            async with DiscoveryClient(backend, sleep=sleep) as client:
                assert not client.is_watching
                await sleep.wake()  # the watch's backoff: the oldest sleep
                await eventually(lambda: client.is_watching)

    assert [entry["event"] for entry in logs][:2] == [
        "discovery.watch_failed",
        "discovery.watching",
    ]


async def test_the_refresh_loop_reads_every_cached_service_again(clock: ManualClock) -> None:
    sleep = SteppedSleep()
    backend = CountingBackend()
    await register(backend, instance("a"), instance("x", name="other-service"))
    async with DiscoveryClient(backend, refresh_interval=15.0, clock=clock, sleep=sleep) as client:
        await client.get_instances(SERVICE)
        await client.get_instances("other-service")
        await register(backend, instance("b"))

        await sleep.wake()

        assert sleep.requested == [15.0, 15.0]
        assert backend.reads == 4
        assert [i.id for i in await client.get_instances(SERVICE)] == ["a", "b"]


async def test_a_watching_client_refreshes_every_cache_ttl_as_a_safety_net() -> None:
    sleep = SteppedSleep()
    async with watched() as backend, DiscoveryClient(backend, cache_ttl=20.0, sleep=sleep):
        await sleep.until_sleeping()
        assert sleep.requested == [20.0]


# -- instance:up / instance:down -------------------------------------------------


async def test_handlers_hear_instances_come_up_and_go_down() -> None:
    heard: list[tuple[str, str, InstanceStatus]] = []

    def on_up(found: ServiceInstance) -> None:
        heard.append(("up", found.id, found.status))

    async def on_down(found: ServiceInstance) -> None:
        heard.append(("down", found.id, found.status))

    def broken(found: ServiceInstance) -> None:
        raise RuntimeError("handler bug")

    async with watched() as backend, DiscoveryClient(backend) as client:
        client.on("instance:up", broken)
        client.on("instance:up", on_up)
        client.on("instance:down", on_down)
        await register(backend, instance("a"))
        await client.get_instances(SERVICE)  # the first read reports nothing

        with structlog.testing.capture_logs() as logs:
            await register(backend, instance("b"))
            await backend.set_status(SERVICE, "a", InstanceStatus.DOWN)
            await backend.deregister(SERVICE, "b")
            await backend.set_status(SERVICE, "a", InstanceStatus.UP)
            await eventually(lambda: client.stats.events_applied == 4)

    assert heard == [
        ("up", "b", InstanceStatus.UP),
        ("down", "a", InstanceStatus.DOWN),
        ("down", "b", InstanceStatus.UP),
        ("up", "a", InstanceStatus.UP),
    ]
    assert sum(entry["event"] == "discovery.handler_failed" for entry in logs) == 2


async def test_refreshes_report_changes_to_handlers_too(
    backend: CountingBackend, clock: ManualClock
) -> None:
    heard: list[str] = []
    client = DiscoveryClient(backend, cache_ttl=10.0, clock=clock)
    client.on("instance:down", lambda found: heard.append(found.id))
    await register(backend, instance("a"), instance("b"))
    await client.get_instances(SERVICE)

    await backend.deregister(SERVICE, "a")
    clock.advance(10.0)
    await client.get_instances(SERVICE)

    assert heard == ["a"]


async def test_off_removes_a_handler_and_on_rejects_unknown_events(
    backend: CountingBackend,
) -> None:
    client = DiscoveryClient(backend)
    heard: list[str] = []

    def handler(found: ServiceInstance) -> None:
        heard.append(found.id)

    client.on("instance:up", handler)
    client.off("instance:up", handler)
    with pytest.raises(ValueError, match="event='instance:gone'"):
        client.on("instance:gone", handler)  # type: ignore[arg-type]


# -- options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cache_ttl": "soon"}, "cache_ttl='soon' is not a duration"),
        ({"refresh_interval": 0}, "refresh_interval=0.0 is not allowed"),
        ({"zone": ""}, "zone='' is not allowed"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DiscoveryClient(MemoryRegistryBackend(), **options)
