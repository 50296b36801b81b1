"""`ConsulRegistryBackend` against RECORDED responses of Consul's agent,
health and catalog HTTP APIs (no Consul agent can run here).

The bodies under ``recorded/consul/`` are shaped exactly as the Consul API
docs' sample responses (``/v1/health/service/:service``,
``/v1/agent/health/service/id/:service_id``, ``/v1/catalog/services``), and
an `httpx.MockTransport` serves them. Every test asserts the exact requests
the backend sends: method, path, query, JSON body and the token header.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends import ConsulRegistryBackend, RegistryBackend
from meshgate.resilience.clock import ManualClock

pytestmark = pytest.mark.recorded

RECORDED = Path(__file__).parent / "recorded" / "consul"
BASE = "http://consul.internal:8500"
TOKEN = "b1gs33cr3t-7d4c-4f0e-9a1b-2c3d4e5f6a7b"
NOW = 1_700_000_030.5


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


Handler = Callable[[httpx.Request], httpx.Response]


class Agent:
    """Answers each (method, path) with a recorded response and keeps every
    request, so that a test can assert what the backend sent."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, status: int = 200, body: Any = None) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            if body is None:
                return httpx.Response(status)
            return httpx.Response(status, json=body)

        self.routes[(method, path)] = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, text=f"unexpected {request.method} {request.url.path}")
        return handler(request)

    def sent(self) -> list[tuple[str, str, dict[str, str]]]:
        return [(r.method, r.url.path, dict(r.url.params)) for r in self.requests]


@pytest.fixture
def agent() -> Agent:
    return Agent()


@pytest.fixture
async def http(agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(agent)) as client:
        yield client


@pytest.fixture
def backend(http: httpx.AsyncClient) -> ConsulRegistryBackend:
    return ConsulRegistryBackend(BASE, token=TOKEN, http=http, clock=ManualClock(NOW))


def user(**fields: Any) -> ServiceInstance:
    return ServiceInstance(
        **{
            "id": "user-1",
            "name": "user-service",
            "host": "10.0.1.21",
            "port": 3001,
            **fields,
        }
    )


@pytest.mark.anyio
async def test_satisfies_the_registry_backend_protocol(backend: ConsulRegistryBackend) -> None:
    assert isinstance(backend, RegistryBackend)


@pytest.mark.anyio
async def test_register_puts_the_service_with_a_ttl_check_as_its_lease(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on("PUT", "/v1/agent/service/register")
    agent.on("PUT", "/v1/agent/check/pass/service:user-1")
    instance = user(
        zone="us-east-1a",
        tags=("api", "users", "v2"),
        metadata={"version": "2.0.0", "weight": 80, "canary": False},
        registered_at=1_700_000_000.0,
    )

    stored = await backend.register(instance, ttl=30)

    request = agent.requests[0]
    assert request.method == "PUT"
    assert request.url == f"{BASE}/v1/agent/service/register?replace-existing-checks=true"
    assert request.headers["X-Consul-Token"] == TOKEN
    assert json.loads(request.content) == {
        "ID": "user-1",
        "Name": "user-service",
        "Address": "10.0.1.21",
        "Port": 3001,
        "Tags": ["api", "users", "v2"],
        "Meta": {
            "version": "2.0.0",
            "weight": "80",
            "canary": "false",
            "meshgate_typed": "weight,canary",
            "zone": "us-east-1a",
            "meshgate_health_check_path": "/health",
            "meshgate_health_check_interval": "30.0",
            "meshgate_registered_at": "1700000000.0",
        },
        "Check": {
            "CheckID": "service:user-1",
            "Name": "meshgate lease of user-1",
            "TTL": "30s",
            "Status": "passing",
            "DeregisterCriticalServiceAfter": "1m",
        },
    }
    assert agent.sent()[1] == (
        "PUT",
        "/v1/agent/check/pass/service:user-1",
        {"note": f"meshgate status=UP last_heartbeat={NOW!r}"},
    )
    assert agent.requests[1].headers["X-Consul-Token"] == TOKEN
    assert stored == msgspec.structs.replace(instance, last_heartbeat=NOW)


@pytest.mark.anyio
async def test_register_sends_the_initial_status_and_sub_second_leases(
    http: httpx.AsyncClient, agent: Agent
) -> None:
    agent.on("PUT", "/v1/agent/service/register")
    agent.on("PUT", "/v1/agent/check/fail/service:user-1")
    backend = ConsulRegistryBackend(
        BASE, http=http, deregister_critical_after="90s", clock=ManualClock(NOW)
    )

    await backend.register(user(status=InstanceStatus.DOWN), ttl=2.5)

    register, record = agent.requests
    check = json.loads(register.content)["Check"]
    assert check["TTL"] == "2500ms"
    assert check["Status"] == "critical"
    assert check["DeregisterCriticalServiceAfter"] == "90s"
    assert record.url.path == "/v1/agent/check/fail/service:user-1"
    assert record.url.params["note"] == f"meshgate status=DOWN last_heartbeat={NOW!r}"
    assert "X-Consul-Token" not in register.headers
    assert "X-Consul-Token" not in record.headers


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["zone", "meshgate_typed", "consul-version", "app.version", ""])
async def test_register_refuses_metadata_keys_consul_cannot_hold(
    backend: ConsulRegistryBackend, agent: Agent, key: str
) -> None:
    with pytest.raises(ValueError, match="metadata key"):
        await backend.register(user(metadata={key: "x"}), ttl=30)
    assert agent.requests == []


@pytest.mark.anyio
async def test_register_raises_what_consul_rejects(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on("PUT", "/v1/agent/service/register", status=400)

    with pytest.raises(httpx.HTTPStatusError):
        await backend.register(user(), ttl=30)


def test_deregister_critical_after_below_consuls_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="deregister_critical_after='30s'"):
        ConsulRegistryBackend(deregister_critical_after="30s")


@pytest.mark.anyio
async def test_get_instances_maps_each_health_entry_to_an_instance(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET", "/v1/health/service/user-service", body=recorded("health_service_user-service.json")
    )

    instances = await backend.get_instances("user-service")

    assert agent.sent() == [("GET", "/v1/health/service/user-service", {})]
    assert agent.requests[0].headers["X-Consul-Token"] == TOKEN
    by_id = {i.id: i for i in instances}
    assert [i.id for i in instances] == ["user-1", "user-2", "user-3", "user-4", "user-legacy"]
    assert by_id["user-1"] == ServiceInstance(
        id="user-1",
        name="user-service",
        host="10.0.1.21",
        port=3001,
        zone="us-east-1a",
        tags=("api", "users", "v2"),
        metadata={"version": "2.0.0", "weight": 80, "canary": False},
        status=InstanceStatus.UP,
        health_check_path="/health",
        health_check_interval=30.0,
        registered_at=1_700_000_000.0,
        last_heartbeat=1_700_000_020.5,
    )
    assert by_id["user-2"].status is InstanceStatus.STARTING
    assert by_id["user-2"].health_check_path == "/ready"
    assert by_id["user-2"].health_check_interval == 10.0
    assert by_id["user-2"].last_heartbeat == 1_700_000_012.75
    assert by_id["user-2"].weight == 20.0


@pytest.mark.anyio
async def test_get_instances_maps_consul_health_to_instance_status(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET", "/v1/health/service/user-service", body=recorded("health_service_user-service.json")
    )

    statuses = {i.id: i.status for i in await backend.get_instances("user-service")}

    assert statuses == {
        "user-1": InstanceStatus.UP,  # passing, as meshgate recorded it
        "user-2": InstanceStatus.STARTING,  # warning, recorded as STARTING
        "user-3": InstanceStatus.DOWN,  # critical: TTL expired
        "user-4": InstanceStatus.OUT_OF_SERVICE,  # maintenance mode
        "user-legacy": InstanceStatus.UNKNOWN,  # someone else's HTTP check: warning
    }


@pytest.mark.anyio
async def test_an_instance_registered_by_other_tooling_takes_the_nodes_address(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET", "/v1/health/service/user-service", body=recorded("health_service_user-service.json")
    )

    legacy = [i for i in await backend.get_instances("user-service") if i.id == "user-legacy"]

    assert legacy == [
        ServiceInstance(
            id="user-legacy",
            name="user-service",
            host="10.0.2.10",
            port=3001,
            tags=("api",),
            metadata={"version": "1.0.0"},
            status=InstanceStatus.UNKNOWN,
        )
    ]


@pytest.mark.anyio
async def test_get_instances_of_an_unknown_service_is_empty(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on("GET", "/v1/health/service/billing", body=[])

    assert await backend.get_instances("billing") == []


@pytest.mark.anyio
async def test_get_services_lists_the_catalog(backend: ConsulRegistryBackend, agent: Agent) -> None:
    agent.on("GET", "/v1/catalog/services", body=recorded("catalog_services.json"))

    assert await backend.get_services() == ["consul", "order-service", "user-service"]
    assert agent.sent() == [("GET", "/v1/catalog/services", {})]
    assert agent.requests[0].headers["X-Consul-Token"] == TOKEN


@pytest.mark.anyio
async def test_heartbeat_passes_the_check_and_records_the_time(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-1",
        body=recorded("agent_health_service_id_user-1.json"),
    )
    agent.on("PUT", "/v1/agent/check/pass/service:user-1")

    beat = await backend.heartbeat("user-service", "user-1")

    assert agent.sent() == [
        ("GET", "/v1/agent/health/service/id/user-1", {}),
        (
            "PUT",
            "/v1/agent/check/pass/service:user-1",
            {"note": f"meshgate status=UP last_heartbeat={NOW!r}"},
        ),
    ]
    assert all(r.headers["X-Consul-Token"] == TOKEN for r in agent.requests)
    assert beat is not None
    assert beat.status is InstanceStatus.UP
    assert beat.last_heartbeat == NOW
    assert beat.registered_at == 1_700_000_000.0
    assert beat.metadata == {"version": "2.0.0", "weight": 80, "canary": False}


@pytest.mark.anyio
async def test_heartbeat_resends_the_recorded_status_instead_of_passing(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-2",
        status=429,
        body=recorded("agent_health_service_id_user-2.json"),
    )
    agent.on("PUT", "/v1/agent/check/warn/service:user-2")

    beat = await backend.heartbeat("user-service", "user-2")

    assert agent.sent()[1] == (
        "PUT",
        "/v1/agent/check/warn/service:user-2",
        {"note": f"meshgate status=STARTING last_heartbeat={NOW!r}"},
    )
    assert beat is not None
    assert beat.status is InstanceStatus.STARTING


@pytest.mark.anyio
async def test_heartbeat_after_the_ttl_lapsed_revives_the_instance_as_up(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-3",
        status=503,
        body=recorded("agent_health_service_id_user-3.json"),
    )
    agent.on("PUT", "/v1/agent/check/pass/service:user-3")

    beat = await backend.heartbeat("user-service", "user-3")

    assert agent.sent()[1][1] == "/v1/agent/check/pass/service:user-3"
    assert beat is not None
    assert beat.status is InstanceStatus.UP


@pytest.mark.anyio
async def test_heartbeat_of_an_instance_the_agent_does_not_hold_returns_none(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-9",
        status=404,
        body=recorded("agent_health_service_id_not_found.json"),
    )

    assert await backend.heartbeat("user-service", "user-9") is None
    assert agent.sent() == [("GET", "/v1/agent/health/service/id/user-9", {})]


@pytest.mark.anyio
async def test_an_id_registered_under_another_service_is_not_touched(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-1",
        body=recorded("agent_health_service_id_user-1.json"),
    )

    assert await backend.heartbeat("order-service", "user-1") is None
    assert await backend.set_status("order-service", "user-1", InstanceStatus.DOWN) is None
    assert await backend.deregister("order-service", "user-1") is None
    assert [method for method, _, _ in agent.sent()] == ["GET", "GET", "GET"]


@pytest.mark.anyio
async def test_heartbeat_returns_none_when_the_check_vanished_meanwhile(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-1",
        body=recorded("agent_health_service_id_user-1.json"),
    )
    agent.on("PUT", "/v1/agent/check/pass/service:user-1", status=404)

    assert await backend.heartbeat("user-service", "user-1") is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "verb"),
    [
        (InstanceStatus.DOWN, "fail"),
        (InstanceStatus.UP, "pass"),
        (InstanceStatus.OUT_OF_SERVICE, "warn"),
        (InstanceStatus.UNKNOWN, "warn"),
    ],
)
async def test_set_status_updates_the_check_and_keeps_the_last_heartbeat(
    backend: ConsulRegistryBackend, agent: Agent, status: InstanceStatus, verb: str
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-2",
        status=429,
        body=recorded("agent_health_service_id_user-2.json"),
    )
    agent.on("PUT", f"/v1/agent/check/{verb}/service:user-2")

    updated = await backend.set_status("user-service", "user-2", status)

    assert agent.sent()[1] == (
        "PUT",
        f"/v1/agent/check/{verb}/service:user-2",
        {"note": f"meshgate status={status.value} last_heartbeat=1700000012.75"},
    )
    assert updated is not None
    assert updated.status is status
    assert updated.last_heartbeat == 1_700_000_012.75


@pytest.mark.anyio
async def test_deregister_removes_the_service_and_returns_it(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-1",
        body=recorded("agent_health_service_id_user-1.json"),
    )
    agent.on("PUT", "/v1/agent/service/deregister/user-1")

    removed = await backend.deregister("user-service", "user-1")

    assert agent.sent() == [
        ("GET", "/v1/agent/health/service/id/user-1", {}),
        ("PUT", "/v1/agent/service/deregister/user-1", {}),
    ]
    assert agent.requests[1].headers["X-Consul-Token"] == TOKEN
    assert removed is not None
    assert (removed.id, removed.host, removed.zone) == ("user-1", "10.0.1.21", "us-east-1a")


@pytest.mark.anyio
async def test_deregister_of_an_unknown_instance_returns_none(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    agent.on(
        "GET",
        "/v1/agent/health/service/id/user-9",
        status=404,
        body=recorded("agent_health_service_id_not_found.json"),
    )

    assert await backend.deregister("user-service", "user-9") is None
    assert len(agent.requests) == 1


@pytest.mark.anyio
async def test_ids_are_escaped_in_paths(backend: ConsulRegistryBackend, agent: Agent) -> None:
    agent.on("GET", "/v1/agent/health/service/id/user 1/a", status=404, body={})

    assert await backend.heartbeat("user-service", "user 1/a") is None
    assert agent.requests[0].url.raw_path == b"/v1/agent/health/service/id/user%201%2Fa"


@pytest.mark.anyio
async def test_expire_has_nothing_to_report_and_sends_nothing(
    backend: ConsulRegistryBackend, agent: Agent
) -> None:
    assert await backend.expire() == []
    assert agent.requests == []


@pytest.mark.anyio
async def test_a_round_trip_through_consuls_own_records(agent: Agent) -> None:
    """What `register` sends, echoed the way Consul reports it back, decodes
    to the instance that was registered."""
    sent: dict[str, Any] = {}
    check: dict[str, Any] = {"CheckID": "service:user-1"}

    def take_service(request: httpx.Request) -> httpx.Response:
        sent.update(json.loads(request.content))
        check["Status"] = sent["Check"]["Status"]
        return httpx.Response(200)

    def take_note(request: httpx.Request) -> httpx.Response:
        check["Output"] = request.url.params["note"]
        return httpx.Response(200)

    agent.routes[("PUT", "/v1/agent/service/register")] = take_service
    agent.routes[("PUT", "/v1/agent/check/warn/service:user-1")] = take_note
    async with httpx.AsyncClient(transport=httpx.MockTransport(agent)) as http:
        backend = ConsulRegistryBackend(BASE, http=http, clock=ManualClock(NOW))
        instance = user(
            zone="eu-west-1c",
            tags=("v3",),
            metadata={"version": "3.1.0", "weight": 12.5, "pinned": True, "team": "42"},
            status=InstanceStatus.STARTING,
            health_check_interval=7.0,
        )
        stored = await backend.register(instance, ttl=15)
        service = {k: sent[k] for k in ("ID", "Address", "Port", "Tags", "Meta")}
        agent.on(
            "GET",
            "/v1/health/service/user-service",
            body=[
                {
                    "Node": {"Node": "node-a", "Address": "10.0.1.10"},
                    "Service": {**service, "Service": "user-service"},
                    "Checks": [check],
                }
            ],
        )

        assert await backend.get_instances("user-service") == [stored]


@pytest.mark.anyio
async def test_aclose_closes_its_own_client_but_not_a_given_one(
    http: httpx.AsyncClient,
) -> None:
    await ConsulRegistryBackend(BASE, http=http).aclose()
    assert not http.is_closed

    own = ConsulRegistryBackend(BASE)
    await own.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await own.get_services()
