"""`ServiceClient`: which instance each attempt goes to, what is retried, and
how the per-instance breakers steer traffic. HTTP is an `httpx.MockTransport`
that answers per instance; tests/integration/test_service_client_http.py does
the same over real sockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
import structlog.testing

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.discovery.errors import NoInstanceAvailableError
from meshgate.discovery.service_client import ServiceClient
from meshgate.resilience.circuit_breaker import CircuitState
from meshgate.resilience.clock import ManualClock

pytestmark = pytest.mark.anyio

SERVICE = "user-service"

Behaviour = Callable[[httpx.Request], httpx.Response]


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"port": request.url.port})


def status(code: int) -> Behaviour:
    return lambda request: httpx.Response(code)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


class Fleet:
    """Instances a, b, c, ... on ports 8001, 8002, ...; `behave[id]` decides how
    each answers, and `calls` records (instance id, method, path) in order."""

    def __init__(self, *behaviours: Behaviour) -> None:
        self.backend = MemoryRegistryBackend()
        self.behave: dict[str, Behaviour] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.requests: list[httpx.Request] = []
        for index, behaviour in enumerate(behaviours):
            self.behave[chr(ord("a") + index)] = behaviour

    async def register(self, *, down: tuple[str, ...] = ()) -> None:
        for index, instance_id in enumerate(self.behave):
            await self.backend.register(
                ServiceInstance(
                    id=instance_id,
                    name=SERVICE,
                    host="10.0.0.1",
                    port=8001 + index,
                    status=InstanceStatus.DOWN if instance_id in down else InstanceStatus.UP,
                ),
                ttl=3600,
            )

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.port is not None
        instance_id = chr(ord("a") + request.url.port - 8001)
        self.calls.append((instance_id, request.method, request.url.path))
        self.requests.append(request)
        return self.behave[instance_id](request)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def called(self) -> list[str]:
        return [instance_id for instance_id, _, _ in self.calls]


def state_of(client: ServiceClient, instance_id: str) -> CircuitState:
    return client.breakers[instance_id].state


async def client_for(fleet: Fleet, **options: Any) -> ServiceClient:
    await fleet.register()
    options.setdefault("retry_delay", 0)
    discovery = DiscoveryClient(fleet.backend, zone=options.pop("zone", None))
    return ServiceClient(discovery, service_name=SERVICE, http=fleet.http(), **options)


# -- the happy path ---------------------------------------------------------------


async def test_requests_go_round_robin_to_up_instances() -> None:
    fleet = Fleet(ok, ok, ok)
    await fleet.register(down=("b",))
    client = ServiceClient(DiscoveryClient(fleet.backend), service_name=SERVICE, http=fleet.http())

    for _ in range(4):
        response = await client.get("/users")
        assert response.status_code == 200

    assert fleet.called() == ["a", "c", "a", "c"]


async def test_every_verb_forwards_its_path_and_httpx_options() -> None:
    fleet = Fleet(ok)
    client = await client_for(fleet)

    await client.get("/users", params={"limit": 10}, headers={"x-trace": "1"})
    await client.post("/users", {"name": "John"})
    await client.put("/users/1", json={"name": "Jane"})
    await client.patch("/users/1", {"name": "J"})
    await client.delete("users/1")
    await client.request("options", "/users")

    assert fleet.calls == [
        ("a", "GET", "/users"),
        ("a", "POST", "/users"),
        ("a", "PUT", "/users/1"),
        ("a", "PATCH", "/users/1"),
        ("a", "DELETE", "/users/1"),
        ("a", "OPTIONS", "/users"),
    ]
    get, post = fleet.requests[:2]
    assert get.url.params["limit"] == "10"
    assert get.headers["x-trace"] == "1"
    assert post.read() == b'{"name":"John"}'


async def test_a_4xx_is_the_services_answer_not_retried_and_not_a_failure() -> None:
    fleet = Fleet(status(404), ok)
    client = await client_for(fleet, breaker_options={"failure_threshold": 1})

    response = await client.get("/users/404")

    assert response.status_code == 404
    assert fleet.called() == ["a"]
    assert state_of(client, "a") == CircuitState.CLOSED


# -- retries ----------------------------------------------------------------------


async def test_a_503_is_retried_on_another_instance() -> None:
    fleet = Fleet(status(503), ok)
    client = await client_for(fleet)

    with structlog.testing.capture_logs() as logs:
        response = await client.get("/users")

    assert response.status_code == 200
    assert fleet.called() == ["a", "b"]
    [retry] = [entry for entry in logs if entry["event"] == "service_client.retrying"]
    assert retry["instance"] == "a"
    assert retry["reason"] == "HTTP 503"


@pytest.mark.parametrize("behaviour", [refused, read_timeout, status(502), status(504)])
async def test_connection_errors_timeouts_and_gateway_errors_are_retried_for_get(
    behaviour: Behaviour,
) -> None:
    fleet = Fleet(behaviour, ok)
    client = await client_for(fleet)

    assert (await client.get("/users")).status_code == 200
    assert fleet.called() == ["a", "b"]


async def test_a_500_is_not_retried() -> None:
    fleet = Fleet(status(500), ok)
    client = await client_for(fleet)

    assert (await client.get("/users")).status_code == 500
    assert fleet.called() == ["a"]


async def test_a_post_answered_503_is_not_retried() -> None:
    fleet = Fleet(status(503), ok)
    client = await client_for(fleet)

    assert (await client.post("/users", {"name": "John"})).status_code == 503
    assert fleet.called() == ["a"]


async def test_a_post_that_timed_out_is_not_retried_and_its_error_raised() -> None:
    fleet = Fleet(read_timeout, ok)
    client = await client_for(fleet)

    with pytest.raises(httpx.ReadTimeout) as caught:
        await client.post("/users", {"name": "John"})

    assert fleet.called() == ["a"]
    assert "tried: a" in caught.value.__notes__[0]


async def test_a_post_whose_connection_was_refused_is_retried_since_it_was_never_sent() -> None:
    fleet = Fleet(refused, ok)
    client = await client_for(fleet)

    assert (await client.post("/users", {"name": "John"})).status_code == 200
    assert fleet.called() == ["a", "b"]


async def test_retry_non_idempotent_retries_a_post_too() -> None:
    fleet = Fleet(status(503), ok)
    client = await client_for(fleet, retry_non_idempotent=True)

    assert (await client.post("/users", {"name": "John"})).status_code == 200
    assert fleet.called() == ["a", "b"]


async def test_retries_try_each_instance_before_returning_to_one_already_tried() -> None:
    fleet = Fleet(status(503), status(503), status(503))
    client = await client_for(fleet, retries=4)

    response = await client.get("/users")

    assert response.status_code == 503  # the last answer, once the retries ran out
    called = fleet.called()
    assert len(called) == 5
    assert sorted(called[:3]) == ["a", "b", "c"]


async def test_a_single_instance_is_retried_itself() -> None:
    answers = [503, 200]
    fleet = Fleet(lambda request: httpx.Response(answers.pop(0)))
    client = await client_for(fleet)

    assert (await client.get("/users")).status_code == 200
    assert fleet.called() == ["a", "a"]


async def test_when_retries_run_out_the_last_transport_error_is_raised_with_a_note() -> None:
    fleet = Fleet(refused, refused)
    client = await client_for(fleet, retries=2, breaker_options={"failure_threshold": 10})

    with pytest.raises(httpx.ConnectError) as caught:
        await client.get("/users")

    assert len(fleet.calls) == 3
    assert (
        "GET /users on 'user-service' failed after 2 instance(s) tried"
        in (caught.value.__notes__[0])
    )


async def test_retries_zero_makes_one_attempt() -> None:
    fleet = Fleet(status(503), ok)
    client = await client_for(fleet, retries=0)

    assert (await client.get("/users")).status_code == 503
    assert fleet.called() == ["a"]


async def test_the_delay_between_attempts_grows_from_retry_delay() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    fleet = Fleet(status(503))
    client = await client_for(fleet, retries=3, retry_delay=1.0, sleep=sleep)

    await client.get("/users")

    # exponential with "equal" jitter: each delay lies in [ceiling / 2, ceiling]
    assert len(slept) == 3
    for delay, ceiling in zip(slept, (1.0, 2.0, 4.0), strict=True):
        assert ceiling / 2 <= delay <= ceiling


# -- breakers ---------------------------------------------------------------------


async def test_an_open_breaker_takes_its_instance_out_of_rotation() -> None:
    fleet = Fleet(refused, ok)
    client = await client_for(fleet, breaker_options={"failure_threshold": 2})

    for _ in range(6):
        assert (await client.get("/users")).status_code == 200

    assert state_of(client, "a") == CircuitState.OPEN
    # a failed twice (each time retried on b), then was skipped
    assert fleet.called() == ["a", "b", "b", "a", "b", "b", "b", "b"]


async def test_an_open_breaker_lets_a_probe_through_after_its_reset_timeout() -> None:
    clock = ManualClock()
    fleet = Fleet(refused, ok)
    client = await client_for(
        fleet, clock=clock, breaker_options={"failure_threshold": 1, "reset_timeout": 10.0}
    )
    await client.get("/users")
    assert state_of(client, "a") == CircuitState.OPEN
    fleet.behave["a"] = ok
    fleet.calls.clear()

    for _ in range(2):
        await client.get("/users")
    assert "a" not in fleet.called()

    clock.advance(10.0)
    for _ in range(4):
        await client.get("/users")
    assert "a" in fleet.called()
    assert state_of(client, "a") == CircuitState.CLOSED


async def test_every_breaker_open_raises_no_instance_available() -> None:
    fleet = Fleet(refused, refused)
    client = await client_for(fleet, retries=1, breaker_options={"failure_threshold": 1})
    with pytest.raises(httpx.ConnectError):
        await client.get("/users")
    fleet.calls.clear()

    with pytest.raises(NoInstanceAvailableError, match="circuit is open") as caught:
        await client.get("/users")

    assert caught.value.service == SERVICE
    assert fleet.calls == []


async def test_no_registered_instance_raises_no_instance_available() -> None:
    client = ServiceClient(DiscoveryClient(MemoryRegistryBackend()), service_name=SERVICE)

    with pytest.raises(NoInstanceAvailableError, match=r"'user-service'.*none is registered"):
        await client.get("/users")
    await client.aclose()


async def test_least_connections_sends_concurrent_requests_to_different_instances() -> None:
    release = anyio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    fleet = Fleet(ok, ok)
    await fleet.register()
    calls: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.port or 0)
        return await slow(request)

    client = ServiceClient(
        DiscoveryClient(fleet.backend),
        service_name=SERVICE,
        load_balancing_strategy="least-connections",
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(client.get, "/slow")
        await anyio.wait_all_tasks_blocked()
        release.set()

    assert sorted(calls) == [8001, 8002]  # on_start counted the first one in flight


# -- construction and closing ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"load_balancing_strategy": "fastest"}, "strategy='fastest' is not allowed"),
        ({"load_balancing_strategy": "zone-aware"}, "needs the client's own zone"),
        ({"retries": -1}, "retries=-1 is not allowed"),
        ({"timeout": 0}, r"timeout=0\.0 is not allowed"),
        ({"breaker_options": {"failure_treshold": 3}}, "failure_treshold"),
        ({"service_name": ""}, "service_name='' is not allowed"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], message: str) -> None:
    options = {"service_name": SERVICE, **options}
    with pytest.raises((ValueError, TypeError), match=message):
        ServiceClient(DiscoveryClient(MemoryRegistryBackend()), **options)


async def test_aclose_closes_its_own_http_client_but_not_the_callers() -> None:
    discovery = DiscoveryClient(MemoryRegistryBackend())
    async with httpx.AsyncClient() as theirs:
        async with ServiceClient(discovery, service_name=SERVICE, http=theirs):
            pass
        assert not theirs.is_closed

    own = ServiceClient(discovery, service_name=SERVICE)
    await own.aclose()
    assert own._http.is_closed
