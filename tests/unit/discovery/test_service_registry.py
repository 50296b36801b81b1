"""`ServiceRegistry`: config checking, registration, heartbeats that keep the
lease (and register again when the registry forgot it), self-checks, and
leaving the registry on the way out.

Heartbeat loops sleep through `SteppedSleep`, which advances the backend's
clock by exactly what was asked: leases are exact and no test waits."""

from __future__ import annotations

import os
import signal
from typing import Any

import anyio
import httpx
import pytest
import structlog.testing

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.errors import InvalidRegistrationError
from meshgate.discovery.service_registry import (
    ServiceRegistration,
    ServiceRegistry,
    load_registration,
)
from meshgate.resilience.clock import ManualClock

pytestmark = pytest.mark.anyio

CONFIG: dict[str, Any] = {
    "name": "user-service",
    "port": 3001,
    "health_check_interval": 30.0,
    "metadata": {"version": "2.0.0", "weight": 80},
    "zone": "us-east-1",
    "tags": ["api", "users", "v2"],
}
ID = "user-service-127.0.0.1-3001"


class SteppedSleep:
    """A sleep that ends only when the test says so. Ending one advances
    `clock` by the time it asked for, as if that time had passed."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.requested: list[float] = []
        self._pending: list[tuple[float, anyio.Event]] = []
        self._arrived: anyio.Event | None = None

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        done = anyio.Event()
        self._pending.append((seconds, done))
        if self._arrived is not None:
            self._arrived.set()
        await done.wait()

    async def until_sleeping(self, count: int = 1) -> None:
        """Return once `count` sleeps are pending."""
        while len(self._pending) < count:
            self._arrived = anyio.Event()
            await self._arrived.wait()

    async def wake(self, times: int = 1) -> None:
        """End the oldest sleep, then wait until its sleeper sleeps again; `times` times."""
        for _ in range(times):
            await self.until_sleeping()
            sleeping = len(self._pending)
            seconds, done = self._pending.pop(0)
            self.clock.advance(seconds)
            done.set()
            await self.until_sleeping(sleeping)


class FlakyBackend(MemoryRegistryBackend):
    """The memory backend, whose next `failures` heartbeats raise."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock=clock)
        self.failures = 0
        self.heartbeats = 0
        self.registrations = 0

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("registry unreachable")
        self.registrations += 1
        return await super().register(instance, ttl=ttl)

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        self.heartbeats += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("registry unreachable")
        return await super().heartbeat(service, instance_id)


class ReadOnlyBackend(MemoryRegistryBackend):
    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        raise PermissionError("the Kubernetes backend is read-only")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def backend(clock: ManualClock) -> FlakyBackend:
    return FlakyBackend(clock)


@pytest.fixture
def sleep(clock: ManualClock) -> SteppedSleep:
    return SteppedSleep(clock)


async def ids(backend: MemoryRegistryBackend) -> list[str]:
    return [i.id for i in await backend.get_instances("user-service")]


# -- the config --------------------------------------------------------------


def test_a_mapping_config_is_checked_and_completed_with_defaults() -> None:
    registration = load_registration(CONFIG)

    assert registration == ServiceRegistration(
        name="user-service",
        port=3001,
        host="127.0.0.1",
        health_check_path="/health",
        health_check_interval=30.0,
        metadata={"version": "2.0.0", "weight": 80},
        zone="us-east-1",
        tags=("api", "users", "v2"),
    )
    assert registration.id == ID


def test_the_instance_id_can_be_given() -> None:
    registration = load_registration({**CONFIG, "instance_id": "user-1"})

    assert registration.id == "user-1"
    assert registration.to_instance().id == "user-1"


def test_the_registered_instance_carries_the_whole_config() -> None:
    registry = ServiceRegistry(CONFIG, MemoryRegistryBackend())

    assert registry.instance == ServiceInstance(
        id=ID,
        name="user-service",
        host="127.0.0.1",
        port=3001,
        zone="us-east-1",
        tags=("api", "users", "v2"),
        metadata={"version": "2.0.0", "weight": 80},
        status=InstanceStatus.UP,
        health_check_path="/health",
        health_check_interval=30.0,
    )


def test_an_unknown_key_is_named_with_the_snake_case_spelling_suggested() -> None:
    with pytest.raises(InvalidRegistrationError, match=r"'healthCheckPath' \(did you mean "):
        ServiceRegistry({**CONFIG, "healthCheckPath": "/hc"}, MemoryRegistryBackend())


def test_an_unknown_key_without_a_near_spelling_lists_the_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown registration key 'prot'; the keys are name, "):
        load_registration({**CONFIG, "prot": 1})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port": "3001x"}, r"Expected `int`, got `str` - at `\$.port`"),
        ({"port": 70000}, r"Expected `int` <= 65535 - at `\$.port`"),
        ({"health_check_path": "health"}, r"at `\$.health_check_path`"),
        ({"health_check_interval": 0}, r"Expected `float` > 0.0 - at `\$.health_check_interval`"),
        ({"health_check_interval": "soon"}, "health_check_interval='soon' is not a duration"),
        ({"tags": "api"}, r"at `\$.tags`"),
        ({"name": ""}, r"at `\$.name`"),
    ],
)
def test_a_bad_value_names_its_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRegistrationError, match=message):
        load_registration({**CONFIG, **change})


def test_a_missing_key_is_named() -> None:
    with pytest.raises(InvalidRegistrationError, match="missing required field `port`"):
        load_registration({"name": "user-service"})


def test_a_struct_config_is_checked_too() -> None:
    with pytest.raises(InvalidRegistrationError, match=r"\$.port"):
        ServiceRegistry(ServiceRegistration(name="svc", port=0), MemoryRegistryBackend())


def test_a_config_of_another_type_is_refused() -> None:
    with pytest.raises(InvalidRegistrationError, match="expected a mapping or a Service"):
        load_registration(["user-service", 3001])  # type: ignore[arg-type]


def test_the_interval_takes_a_duration_string() -> None:
    assert load_registration({**CONFIG, "health_check_interval": "15s"}).health_check_interval == 15


def test_the_lease_is_three_health_check_intervals_and_heartbeats_come_every_third() -> None:
    registry = ServiceRegistry({**CONFIG, "health_check_interval": 10}, MemoryRegistryBackend())

    assert registry.ttl == 30.0
    assert registry.heartbeat_interval == 10.0


def test_an_explicit_ttl_wins_and_is_checked() -> None:
    assert ServiceRegistry(CONFIG, MemoryRegistryBackend(), ttl="15s").heartbeat_interval == 5.0
    with pytest.raises(ValueError, match=r"ttl=0\.0 is not allowed"):
        ServiceRegistry(CONFIG, MemoryRegistryBackend(), ttl=0)


# -- register / deregister ------------------------------------------------------


async def test_register_stores_the_instance_and_leaving_the_block_deregisters(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    registered: list[bool] = []
    async with ServiceRegistry(CONFIG, backend, sleep=sleep) as registry:
        with structlog.testing.capture_logs() as logs:
            stored = await registry.register()
        registered.append(registry.is_registered)
        assert stored.registered_at == backend._clock()
        assert await ids(backend) == [ID]
    registered.append(registry.is_registered)
    assert registered == [True, False]
    assert await ids(backend) == []
    assert logs[0]["event"] == "registry.registered"
    assert logs[0]["service"] == "user-service"
    assert logs[0]["instance"] == ID


async def test_register_outside_the_block_says_how_to_use_it(backend: FlakyBackend) -> None:
    with pytest.raises(RuntimeError, match="async with ServiceRegistry"):
        await ServiceRegistry(CONFIG, backend).register()


async def test_errors_of_the_first_registration_reach_the_caller(clock: ManualClock) -> None:
    async with ServiceRegistry(CONFIG, ReadOnlyBackend(clock=clock)) as registry:
        with pytest.raises(PermissionError, match="read-only"):
            await registry.register()
        assert not registry.is_registered


async def test_deregister_removes_the_instance_and_stops_the_heartbeats(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    async with ServiceRegistry(CONFIG, backend, sleep=sleep) as registry:
        await registry.register()
        await sleep.wake()
        await registry.deregister()
        await anyio.wait_all_tasks_blocked()
        beats = backend.heartbeats

        sleep.clock.advance(1000)
        await anyio.wait_all_tasks_blocked()

        assert await ids(backend) == []
        assert backend.heartbeats == beats == 1
        await registry.deregister()  # twice is harmless


async def test_registering_again_while_registered_keeps_one_heartbeat(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    async with ServiceRegistry(CONFIG, backend, sleep=sleep) as registry:
        await registry.register()
        await registry.register()
        await sleep.wake()

        assert backend.registrations == 2
        assert backend.heartbeats == 1


async def test_a_failed_deregistration_on_the_way_out_is_logged_not_raised(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    class Unreachable(FlakyBackend):
        async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
            raise ConnectionError("registry unreachable")

    with structlog.testing.capture_logs() as logs:
        async with ServiceRegistry(CONFIG, Unreachable(sleep.clock), sleep=sleep) as registry:
            await registry.register()

    assert logs[-1]["event"] == "registry.deregister_failed"
    assert "registry unreachable" in logs[-1]["error"]


# -- heartbeats -----------------------------------------------------------------


async def test_heartbeats_keep_the_lease_alive_long_past_its_ttl(
    backend: FlakyBackend, sleep: SteppedSleep, clock: ManualClock
) -> None:
    async with ServiceRegistry(CONFIG, backend, ttl=9.0, sleep=sleep) as registry:
        await registry.register()
        await sleep.wake(times=20)

        assert sleep.requested == [3.0] * 21
        assert backend.heartbeats == 20
        assert backend.registrations == 1
        [live] = await backend.get_instances("user-service")
        assert live.last_heartbeat == clock()


async def test_a_heartbeat_the_registry_does_not_know_registers_again(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    async with ServiceRegistry(CONFIG, backend, sleep=sleep) as registry:
        await registry.register()
        await backend.deregister("user-service", ID)  # a registry restart without persistence

        with structlog.testing.capture_logs() as logs:
            await sleep.wake()

        assert await ids(backend) == [ID]
        assert backend.registrations == 2
        assert [entry["event"] for entry in logs] == ["registry.reregistered"]
        assert logs[0]["log_level"] == "warning"


async def test_a_lease_that_ran_out_during_a_pause_is_registered_again(
    backend: FlakyBackend, sleep: SteppedSleep, clock: ManualClock
) -> None:
    async with ServiceRegistry(CONFIG, backend, ttl=9.0, sleep=sleep) as registry:
        await registry.register()
        clock.advance(60)  # the process was stopped (SIGSTOP, a long GC, a laptop lid)
        assert await ids(backend) == []

        await sleep.wake()

        assert await ids(backend) == [ID]


async def test_transient_heartbeat_errors_are_retried_sooner_and_never_raised(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    async with ServiceRegistry(CONFIG, backend, ttl=30.0, sleep=sleep) as registry:
        await registry.register()
        backend.failures = 3
        with structlog.testing.capture_logs() as logs:
            await sleep.wake(times=5)

        interval, *retries, back_to_normal = sleep.requested[:5]
        assert interval == 10.0
        assert len(retries) == 3
        assert all(0 < delay <= 10.0 for delay in retries)
        assert retries[0] <= 1.0  # the first retry comes well before the next heartbeat
        assert back_to_normal == 10.0
        failed = [entry for entry in logs if entry["event"] == "registry.heartbeat_failed"]
        assert [entry["attempt"] for entry in failed] == [1, 2, 3]
        assert "registry.heartbeat_recovered" in [entry["event"] for entry in logs]
        assert await ids(backend) == [ID]


# -- run() in the caller's task group ---------------------------------------------


async def test_run_retries_registration_until_the_registry_answers_and_deregisters_on_cancel(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    backend.failures = 2
    registry = ServiceRegistry(CONFIG, backend, sleep=sleep)
    async with anyio.create_task_group() as tg:
        tg.start_soon(registry.run)
        await sleep.wake(times=2)  # two backoff waits after two refused registrations

        assert await ids(backend) == [ID]
        assert registry.is_registered
        tg.cancel_scope.cancel()

    assert await ids(backend) == []
    assert not registry.is_registered


async def test_start_run_returns_once_registered(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    registry = ServiceRegistry(CONFIG, backend, sleep=sleep)
    async with anyio.create_task_group() as tg:
        await tg.start(registry.run)
        assert await ids(backend) == [ID]
        await registry.deregister()  # ends run()

    assert await ids(backend) == []


async def test_run_gives_up_at_once_on_a_read_only_backend(clock: ManualClock) -> None:
    registry = ServiceRegistry(CONFIG, ReadOnlyBackend(clock=clock))

    with pytest.raises(PermissionError):
        await registry.run()


# -- self-check --------------------------------------------------------------------


def health_endpoint(answers: list[int]) -> httpx.AsyncClient:
    """An HTTP client whose GETs of the health path get the next status in `answers`
    (the last one repeats); 0 is a refused connection."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "http://127.0.0.1:3001/health"
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        if status == 0:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(status)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_self_check_reports_status_changes_to_the_registry(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    async with (
        health_endpoint([200, 200, 503, 0, 200]) as http,
        ServiceRegistry(CONFIG, backend, self_check=True, http=http, sleep=sleep) as registry,
    ):
        await registry.register()
        statuses = []
        for _ in range(4):
            # the heartbeat (every 30 s of a 90 s lease) and the health check
            # (every 30 s) sleep side by side: wake both
            await sleep.wake(times=2)
            [live] = await backend.get_instances("user-service")
            statuses.append(live.status)

    assert statuses == [
        InstanceStatus.UP,
        InstanceStatus.DOWN,
        InstanceStatus.DOWN,
        InstanceStatus.UP,
    ]


async def test_self_check_registers_down_when_the_health_endpoint_fails(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    async with (
        health_endpoint([0]) as http,
        ServiceRegistry(CONFIG, backend, self_check=True, http=http, sleep=sleep) as registry,
    ):
        stored = await registry.register()

        assert stored.status == InstanceStatus.DOWN
        assert registry.status == InstanceStatus.DOWN


async def test_a_reregistration_carries_the_last_self_checked_status(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    async with (
        health_endpoint([503]) as http,
        ServiceRegistry(CONFIG, backend, self_check=True, http=http, sleep=sleep) as registry,
    ):
        await registry.register()
        await backend.deregister("user-service", ID)
        await sleep.wake(times=2)  # the heartbeat and the health check, in either order

        [live] = await backend.get_instances("user-service")
        assert live.status == InstanceStatus.DOWN


# -- signals ---------------------------------------------------------------------


async def test_a_signal_deregisters_and_is_returned(
    backend: FlakyBackend, sleep: SteppedSleep
) -> None:
    # SIGWINCH is ignored by default: one sent before the receiver is ready is harmless.
    received: list[signal.Signals] = []
    async with ServiceRegistry(CONFIG, backend, sleep=sleep) as registry:
        await registry.register()

        async def wait_for_signal() -> None:
            received.append(await registry.deregister_on_signal(signal.SIGWINCH))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for_signal)
                while not received:
                    os.kill(os.getpid(), signal.SIGWINCH)
                    await anyio.sleep(0.01)

        assert received == [signal.SIGWINCH]
        assert not registry.is_registered
        assert await ids(backend) == []
