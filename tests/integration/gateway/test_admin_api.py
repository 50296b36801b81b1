"""The admin API end to end: a gateway serving real backends on its main
port, its admin API on a second port, and httpx talking to both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import ControlAction, ControlReply, ReplyCode
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.gateway.admin_api import MAX_BODY_BYTES, AdminApi
from meshgate.gateway.http.server import HttpServer
from meshgate.gateway.prometheus import CONTENT_TYPE
from meshgate.gateway.server import GatewayServer
from tests.integration.gateway.conftest import closed_port, start_backend, started_gateway

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def admin_client(
    gateway: GatewayServer, *, token: str | None = TOKEN, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """`gateway`'s admin API on a free loopback port, and a client for it."""
    server = HttpServer(AdminApi(gateway, token=token, **options).handle)
    await server.start("127.0.0.1", 0)
    host, port = server.bound[0]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10.0) as client:
            yield client
    finally:
        await server.close()


def _upstream(backend: Any) -> str:
    return f"127.0.0.1:{backend.port}"


def _gateway(*routes: dict[str, Any], backend: Any = None) -> GatewayServer:
    return GatewayServer.from_config({"routes": list(routes)}, backend)


async def _versioned_registry(
    backends: Any, *versions: str
) -> tuple[MemoryRegistryBackend, list[Any]]:
    registry = MemoryRegistryBackend()
    started = []
    for version in versions:
        backend = await start_backend(backends)
        started.append(backend)
        await registry.register(
            ServiceInstance(
                id=f"orders-{version}",
                name="orders",
                host="127.0.0.1",
                port=backend.port,
                zone="eu-west-1a",
                metadata={"version": version},
            ),
            ttl=60,
        )
    return registry, started


def _canary_route() -> dict[str, Any]:
    return {
        "path": "/api/orders/**",
        "service_name": "orders",
        "canary": {
            "stable": {"version": "1.0.0", "weight": 90},
            "canary": {"version": "2.0.0", "weight": 10},
        },
    }


# -- health -------------------------------------------------------------------------


async def test_healthz_answers_ok_while_the_process_runs() -> None:
    async with admin_client(_gateway()) as admin:
        reply = await admin.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}


async def test_readyz_is_503_until_the_main_port_serves_and_while_the_node_is_not_ready(
    backends: Any,
) -> None:
    backend = await start_backend(backends)
    gateway = _gateway({"path": "/**", "upstreams": [_upstream(backend)]})
    node_ready = False
    async with admin_client(gateway, ready=lambda: node_ready) as admin:
        before = await admin.get("/readyz")
        async with started_gateway(gateway):
            waiting = await admin.get("/readyz")
            node_ready = True
            ready = await admin.get("/readyz")
    assert before.status_code == 503
    assert "not serving" in before.json()["message"]
    assert waiting.status_code == 503
    assert waiting.json()["error"] == "not_ready"
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


# -- routing of admin paths ---------------------------------------------------------


async def test_unknown_paths_get_404_and_wrong_methods_405_with_allow() -> None:
    async with admin_client(_gateway()) as admin:
        missing = await admin.get("/admin/nothing")
        wrong = await admin.delete("/admin/routes", headers=AUTH)
        head = await admin.head("/healthz")
        slash = await admin.get("/admin/routes/")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert "/admin/routes" in missing.json()["message"]
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST"
    assert head.status_code == 200
    assert head.content == b""
    assert slash.status_code == 200


# -- metrics ------------------------------------------------------------------------


async def test_metrics_is_prometheus_text_of_what_the_main_port_served(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = _gateway(
        {"path": "/api/**", "upstreams": [_upstream(backend)], "circuit_breaker": {}}
    )
    async with started_gateway(gateway) as client, admin_client(gateway) as admin:
        for _ in range(3):
            assert (await client.get("/api/hello")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        reply = await admin.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == CONTENT_TYPE
    families = {f.name: f for f in text_string_to_metric_families(reply.text)}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["meshgate_requests"].samples
    }
    assert requests[("/api/**", "200")] == 3
    circuit = {s.labels["state"]: s.value for s in families["meshgate_circuit_state"].samples}
    assert circuit["closed"] == 1
    instances = {s.labels["state"]: s.value for s in families["meshgate_instances"].samples}
    assert instances == {"up": 1, "ejected": 0}
    assert families["meshgate_open_connections"].samples[0].value == 1  # httpx keeps one open
    assert families["meshgate_in_flight_requests"].samples[0].value == 0


async def test_admin_metrics_is_the_gateway_snapshot_as_json(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = _gateway({"path": "/api/**", "upstreams": [_upstream(backend)]})
    async with started_gateway(gateway) as client, admin_client(gateway) as admin:
        await client.get("/api/a")
        await client.get("/api/b")
        snapshot = (await admin.get("/admin/metrics")).json()
    assert snapshot["aggregated"]["total_calls"] == 2
    route = snapshot["routes"]["/api/**"]
    assert route["total"]["success_calls"] == 2
    assert set(route["versions"]["default"]) >= {"p50", "p95", "p99", "failure_rate"}


# -- routes -------------------------------------------------------------------------


async def test_a_route_added_through_admin_is_served_on_the_main_port(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = _gateway()
    route = {
        "path": "/api/users/**",
        "upstreams": [_upstream(backend)],
        "strip_prefix": "/api/users",
    }
    async with started_gateway(gateway) as client, admin_client(gateway) as admin:
        assert (await client.get("/api/users/headers")).status_code == 404
        added = await admin.post("/admin/routes", json=route, headers=AUTH)
        served = await client.get("/api/users/headers")
        again = await admin.post("/admin/routes", json=route, headers=AUTH)
        listed = (await admin.get("/admin/routes")).json()
    assert added.status_code == 201
    assert added.json()["name"] == "/api/users/**"
    assert served.status_code == 200
    assert served.json()["target"] == "/headers"
    assert again.status_code == 409
    assert again.json()["error"] == "route_exists"
    assert [r["name"] for r in listed["routes"]] == ["/api/users/**"]
    assert listed["routes"][0]["upstreams"] == [_upstream(backend)]


async def test_one_route_is_read_replaced_and_deleted_by_name_in_the_query(backends: Any) -> None:
    backend = await start_backend(backends)
    name = "/api/users/**"
    gateway = _gateway({"path": name, "upstreams": [_upstream(backend)]})
    async with started_gateway(gateway) as client, admin_client(gateway) as admin:
        # percent-encoded by hand, as curl users write it
        read = await admin.get("/admin/route?name=%2Fapi%2Fusers%2F%2A%2A")
        replaced = await admin.put(
            "/admin/route",
            params={"name": name},
            json={"path": name, "upstreams": [_upstream(backend)], "strip_prefix": "/api"},
            headers=AUTH,
        )
        served = await client.get("/api/users/headers")
        deleted = await admin.delete("/admin/route", params={"name": name}, headers=AUTH)
        gone = await client.get("/api/users/headers")
        read_gone = await admin.get("/admin/route", params={"name": name})
        deleted_again = await admin.delete("/admin/route", params={"name": name}, headers=AUTH)
    assert read.status_code == 200
    assert read.json()["path"] == name
    assert replaced.status_code == 200
    assert replaced.json()["strip_prefix"] == "/api"
    assert served.text == "ok /users/headers"
    assert deleted.json() == {"removed": name}
    assert gone.status_code == 404
    assert read_gone.status_code == 404
    assert read_gone.json()["error"] == "no_route"
    assert deleted_again.status_code == 404


async def test_put_of_a_new_name_adds_the_route_and_a_body_naming_another_is_refused(
    backends: Any,
) -> None:
    backend = await start_backend(backends)
    gateway = _gateway()
    async with admin_client(gateway) as admin:
        created = await admin.put(
            "/admin/route",
            params={"name": "users"},
            json={"path": "/users/**", "upstreams": [_upstream(backend)]},
            headers=AUTH,
        )
        renamed = await admin.put(
            "/admin/route",
            params={"name": "users"},
            json={"path": "/users/**", "name": "people", "upstreams": [_upstream(backend)]},
            headers=AUTH,
        )
    assert created.status_code == 201
    assert created.json()["name"] == "users"  # the query's name, since the body had none
    assert renamed.status_code == 400
    assert renamed.json()["error"] == "name_mismatch"


async def test_bad_route_bodies_get_400_naming_what_is_wrong() -> None:
    gateway = _gateway()
    async with admin_client(gateway) as admin:

        async def post(content: bytes) -> httpx.Response:
            return await admin.post("/admin/routes", content=content, headers=AUTH)

        not_json = await post(b'{"path": "/a/**", ')
        not_object = await post(b'["/a/**"]')
        empty = await post(b"")
        bad_type = await post(
            b'{"path": "/a/**", "upstreams": ["127.0.0.1:1"],'
            b' "circuit_breaker": {"failure_threshold": "3"}}'
        )
        unknown_key = await post(b'{"path": "/a/**", "upstreams": ["127.0.0.1:1"], "colour": 1}')
        no_target = await post(b'{"path": "/a/**"}')
        no_registry = await post(b'{"path": "/a/**", "service_name": "users"}')
        too_large = await post(b" " * (MAX_BODY_BYTES + 1))
        no_name = await admin.put("/admin/route", json={"path": "/a/**"}, headers=AUTH)
    assert [r.status_code for r in (not_json, not_object, empty)] == [400, 400, 400]
    assert not_json.json()["error"] == "bad_json"
    assert "not valid JSON" in not_json.json()["message"]
    assert "got list" in not_object.json()["message"]
    assert bad_type.status_code == 400
    assert bad_type.json()["message"] == (
        "route: circuit_breaker.failure_threshold: Expected `int`, got `str`"
    )
    assert unknown_key.status_code == 400
    assert "colour" in unknown_key.json()["message"]
    assert no_target.status_code == 400
    assert "service_name" in no_target.json()["message"]
    assert no_registry.status_code == 400
    assert "no registry" in no_registry.json()["message"]
    assert too_large.status_code == 413
    assert no_name.status_code == 400
    assert "name is missing" in no_name.json()["message"]
    assert gateway.routes == []


# -- auth ---------------------------------------------------------------------------


async def test_writes_need_the_bearer_token_and_reads_do_not(backends: Any) -> None:
    backend = await start_backend(backends)
    route = {"path": "/a/**", "upstreams": [_upstream(backend)]}
    gateway = _gateway()
    async with admin_client(gateway) as admin:
        missing = await admin.post("/admin/routes", json=route)
        wrong = await admin.post(
            "/admin/routes", json=route, headers={"Authorization": "Bearer guess"}
        )
        basic = await admin.post(
            "/admin/routes", json=route, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}
        )
        refused_delete = await admin.delete("/admin/route", params={"name": "/a/**"})
        right = await admin.post("/admin/routes", json=route, headers=AUTH)
        read = await admin.get("/admin/routes")
    for refused in (missing, wrong, basic, refused_delete):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["error"] == "unauthorized"
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert "admin_token" in missing.json()["message"]
    assert right.status_code == 201
    assert read.status_code == 200
    assert [r.name for r in gateway.routes] == ["/a/**"]


async def test_without_a_token_loopback_clients_may_write(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = _gateway()
    async with admin_client(gateway, token=None, loopback_only_writes=True) as admin:
        added = await admin.post(
            "/admin/routes", json={"path": "/a/**", "upstreams": [_upstream(backend)]}
        )
    assert added.status_code == 201


# -- instances ----------------------------------------------------------------------


async def test_instances_show_what_each_route_sees_and_the_ejected_with_time_left(
    backends: Any,
) -> None:
    good = await start_backend(backends)
    dead = f"127.0.0.1:{closed_port()}"
    gateway = _gateway(
        {
            "path": "/**",
            "upstreams": [dead, _upstream(good)],
            "outlier_detection": {"consecutive_failures": 2, "ejection_time": "30s"},
        }
    )
    async with started_gateway(gateway) as client, admin_client(gateway) as admin:
        for _ in range(4):
            await client.get("/x")
        everything = (await admin.get("/admin/instances")).json()
        one = await admin.get("/admin/instances", params={"route": "/**"})
        unknown = await admin.get("/admin/instances", params={"route": "/nope"})
    [route] = everything["routes"]
    assert route["route"] == "/**"
    assert route["error"] is None
    by_address = {i["address"]: i for i in route["instances"]}
    assert by_address[dead]["ejected"] is True
    assert 29.0 < by_address[dead]["ejected_seconds_left"] <= 30.0
    assert by_address[_upstream(good)]["ejected"] is False
    assert by_address[_upstream(good)]["ejected_seconds_left"] is None
    assert by_address[_upstream(good)]["status"] == "UP"
    assert [r["route"] for r in one.json()["routes"]] == ["/**"]
    assert unknown.status_code == 404


async def test_instances_of_a_discovered_route_carry_version_and_zone(backends: Any) -> None:
    registry, _ = await _versioned_registry(backends, "1.0.0", "2.0.0")
    gateway = _gateway(_canary_route(), backend=registry)
    async with admin_client(gateway) as admin:
        reply = (await admin.get("/admin/instances")).json()
    [route] = reply["routes"]
    assert route["source"] == "orders"
    assert [(i["id"], i["version"], i["zone"]) for i in route["instances"]] == [
        ("orders-1.0.0", "1.0.0", "eu-west-1a"),
        ("orders-2.0.0", "2.0.0", "eu-west-1a"),
    ]


class _DownRegistry(MemoryRegistryBackend):
    async def get_instances(self, service: str) -> list[ServiceInstance]:
        raise ConnectionError("registry unreachable")


async def test_a_registry_that_cannot_answer_is_reported_per_route_not_as_a_500() -> None:
    gateway = _gateway(
        {"path": "/orders/**", "service_name": "orders"},
        {"path": "/static/**", "upstreams": ["127.0.0.1:1"]},
        backend=_DownRegistry(),
    )
    async with admin_client(gateway) as admin:
        listed = await admin.get("/admin/instances")
        scraped = await admin.get("/metrics")
    assert listed.status_code == 200
    routes = {r["route"]: r for r in listed.json()["routes"]}
    assert "registry unreachable" in routes["/orders/**"]["error"]
    assert routes["/orders/**"]["instances"] == []
    assert routes["/static/**"]["error"] is None
    assert scraped.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    assert {s.labels["route"] for s in families["meshgate_instances"].samples} == {"/static/**"}


# -- circuits -----------------------------------------------------------------------


async def test_an_operator_forces_a_circuit_open_and_the_main_port_answers_503(
    backends: Any,
) -> None:
    backend = await start_backend(backends)
    gateway = _gateway(
        {"path": "/pay/**", "upstreams": [_upstream(backend)], "circuit_breaker": {}},
        {"path": "/plain/**", "upstreams": [_upstream(backend)]},
    )
    events: list[Any] = []
    gateway.on("circuit:open", events.append)
    async with started_gateway(gateway) as client, admin_client(gateway) as admin:
        listed = (await admin.get("/admin/circuits")).json()
        opened = await admin.post(
            "/admin/circuits", params={"route": "/pay/**", "action": "open"}, headers=AUTH
        )
        refused = await client.get("/pay/1")
        closed = await admin.post(
            "/admin/circuits", params={"route": "/pay/**", "action": "close"}, headers=AUTH
        )
        served = await client.get("/pay/1")
        disabled = await admin.post(
            "/admin/circuits", params={"route": "/pay/**", "action": "disable"}, headers=AUTH
        )
        read = (await admin.get("/admin/circuits", params={"route": "/pay/**"})).json()
    assert [c["route"] for c in listed["circuits"]] == ["/pay/**"]
    assert listed["circuits"][0]["state"] == "closed"
    assert listed["circuits"][0]["failure_rate"] == 0.0
    assert opened.status_code == 200
    assert opened.json()["changed"] is True
    assert opened.json()["circuit"]["state"] == "forced-open"
    assert opened.json()["circuit"]["retry_after"] > 0
    assert refused.status_code == 503
    assert "retry-after" in refused.headers
    assert closed.json()["circuit"]["state"] == "closed"
    assert served.status_code == 200
    assert disabled.json()["circuit"]["state"] == "disabled"
    assert read["circuits"][0]["state"] == "disabled"
    assert read["circuits"][0]["rejected"] == 1
    assert [e["to"] for e in events] == ["forced-open"]


async def test_circuit_actions_check_the_route_the_breaker_and_the_action(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = _gateway(
        {"path": "/pay/**", "upstreams": [_upstream(backend)], "circuit_breaker": {}},
        {"path": "/plain/**", "upstreams": [_upstream(backend)]},
    )
    async with admin_client(gateway) as admin:

        async def act(**params: str) -> httpx.Response:
            return await admin.post("/admin/circuits", params=params, headers=AUTH)

        bad_action = await act(route="/pay/**", action="explode")
        no_breaker = await act(route="/plain/**", action="open")
        no_route = await act(route="/nope", action="open")
        no_params = await act()
        twice = await admin.post(
            "/admin/circuits?route=%2Fpay%2F%2A%2A&route=x&action=open", headers=AUTH
        )
    assert bad_action.status_code == 400
    assert "open, close, reset, disable" in bad_action.json()["message"]
    assert no_breaker.status_code == 404
    assert no_breaker.json()["error"] == "no_circuit_breaker"
    assert no_route.status_code == 404
    assert no_params.status_code == 400
    assert twice.status_code == 400


# -- canaries -----------------------------------------------------------------------


async def test_an_operator_promotes_a_canary_and_all_traffic_goes_to_it(backends: Any) -> None:
    registry, (_, canary) = await _versioned_registry(backends, "1.0.0", "2.0.0")
    gateway = _gateway(_canary_route(), backend=registry)
    async with started_gateway(gateway) as client, admin_client(gateway) as admin:
        before = (await admin.get("/admin/canaries")).json()
        promoted = await admin.post(
            "/admin/canaries",
            params={"route": "/api/orders/**", "action": "promote"},
            headers=AUTH,
        )
        canary_seen = len(canary.requests)
        for _ in range(4):
            assert (await client.get("/api/orders/1")).status_code == 200
        rollback = await admin.post(
            "/admin/canaries",
            params={"route": "/api/orders/**", "action": "rollback"},
            headers=AUTH,
        )
        again = await admin.post(
            "/admin/canaries",
            params={"route": "/api/orders/**", "action": "promote"},
            headers=AUTH,
        )
    [status] = before["canaries"]
    assert status["route"] == "/api/orders/**"
    assert (status["state"], status["canary_weight"], status["stable_weight"]) == (
        "active",
        10.0,
        90.0,
    )
    assert promoted.status_code == 200
    assert promoted.json()["changed"] is True
    assert promoted.json()["canary"]["state"] == "promoted"
    assert promoted.json()["canary"]["canary_weight"] == 100.0
    assert len(canary.requests) - canary_seen == 4
    assert rollback.status_code == 409
    assert rollback.json()["error"] == "rollout_finished"
    assert again.status_code == 200
    assert again.json()["changed"] is False


async def test_a_canary_is_paused_and_resumed_and_unknown_ones_are_404(backends: Any) -> None:
    registry, _ = await _versioned_registry(backends, "1.0.0", "2.0.0")
    gateway = _gateway(
        _canary_route(), {"path": "/plain/**", "upstreams": ["127.0.0.1:1"]}, backend=registry
    )
    async with admin_client(gateway) as admin:

        async def act(route: str, action: str) -> httpx.Response:
            return await admin.post(
                "/admin/canaries", params={"route": route, "action": action}, headers=AUTH
            )

        paused = await act("/api/orders/**", "pause")
        read = (await admin.get("/admin/canaries", params={"route": "/api/orders/**"})).json()
        resumed = await act("/api/orders/**", "resume")
        no_canary = await act("/plain/**", "pause")
        bad = await act("/api/orders/**", "ship-it")
    assert paused.json()["canary"]["state"] == "paused"
    assert read["canaries"][0]["state"] == "paused"
    assert resumed.json()["canary"]["state"] == "active"
    assert no_canary.status_code == 404
    assert no_canary.json()["error"] == "no_canary"
    assert bad.status_code == 400


# -- canaries driven by the cluster's controller ------------------------------------


class FakeController:
    """A `CanaryControl` hook standing in for the cluster's controller: it
    answers each action with `reply` (None: no controller answered) and
    records what it was asked."""

    def __init__(self, reply: ControlReply | None) -> None:
        self.reply = reply
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, route: str, action: ControlAction) -> ControlReply | None:
        self.asked.append((route, action))
        return self.reply


async def _canary_post(admin: httpx.AsyncClient, action: str) -> httpx.Response:
    return await admin.post(
        "/admin/canaries", params={"route": "/api/orders/**", "action": action}, headers=AUTH
    )


async def test_a_canary_action_goes_to_the_controller_when_one_answers() -> None:
    gateway = _gateway(_canary_route(), backend=MemoryRegistryBackend())
    controller = FakeController(
        ControlReply(
            ok=True, changed=True, state="paused", stable_weight=75.0, canary_weight=25.0, step=1
        )
    )
    gateway.canary_control = controller
    async with admin_client(gateway) as admin:
        paused = await _canary_post(admin, "pause")
    assert controller.asked == [("/api/orders/**", "pause")]
    assert paused.status_code == 200
    body = paused.json()
    assert body["acted_by"] == "controller"
    assert (body["action"], body["changed"], body["state"]) == ("pause", True, "paused")
    assert (body["canary_weight"], body["stable_weight"], body["step"]) == (25.0, 75.0, 1)
    # The replica's own engine waits for the controller's broadcast; it did not act.
    assert (body["canary"]["state"], body["canary"]["canary_weight"]) == ("active", 10.0)
    [engine] = gateway.canaries().values()
    assert engine.state == "active"


async def test_without_an_answering_controller_the_replica_acts_alone() -> None:
    gateway = _gateway(_canary_route(), backend=MemoryRegistryBackend())
    controller = FakeController(None)
    gateway.canary_control = controller
    async with admin_client(gateway) as admin:
        promoted = await _canary_post(admin, "promote")
    assert controller.asked == [("/api/orders/**", "promote")]
    body = promoted.json()
    assert (body["acted_by"], body["state"], body["canary_weight"]) == (
        "replica",
        "promoted",
        100.0,
    )
    assert body["step"] == body["canary"]["current_step"]
    assert body["canary"]["state"] == "promoted"


async def test_a_gateway_without_a_hook_acts_on_its_own_engine() -> None:
    gateway = _gateway(_canary_route(), backend=MemoryRegistryBackend())
    async with admin_client(gateway) as admin:
        paused = await _canary_post(admin, "pause")
    assert (paused.json()["acted_by"], paused.json()["state"]) == ("replica", "paused")


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("not_found", 404, "no_canary"),
        ("invalid", 409, "rollout_finished"),
        ("unavailable", 503, "controller_unavailable"),
        ("internal", 502, "controller_error"),
    ],
)
async def test_a_controller_refusal_is_answered_with_its_status_and_the_replica_stays(
    code: ReplyCode, status: int, error: str
) -> None:
    gateway = _gateway(_canary_route(), backend=MemoryRegistryBackend())
    gateway.canary_control = FakeController(
        ControlReply(ok=False, code=code, error=f"refused: {code}")
    )
    async with admin_client(gateway) as admin:
        refused = await _canary_post(admin, "rollback")
    assert refused.status_code == status
    assert (refused.json()["error"], refused.json()["message"]) == (error, f"refused: {code}")
    # A refusal is the cluster's answer: the replica must not act behind its back.
    [engine] = gateway.canaries().values()
    assert engine.state == "active"
