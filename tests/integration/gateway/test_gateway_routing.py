"""The gateway end to end: real backends on loopback, the gateway in front,
requests through it with httpx."""

from __future__ import annotations

from typing import Any

import pytest

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.gateway.server import GatewayServer
from tests.integration.gateway.conftest import closed_port, start_backend, started_gateway

pytestmark = pytest.mark.anyio


def _upstream(backend: Any) -> str:
    return f"127.0.0.1:{backend.port}"


async def test_a_route_strips_its_prefix_and_passes_the_request_on(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/api/users/**",
                    "upstreams": [_upstream(backend)],
                    "strip_prefix": "/api/users",
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        reply = await client.get("/api/users/headers?full=1", headers={"X-Request-Id": "abc-1"})
    assert reply.status_code == 200
    seen = reply.json()
    assert seen["target"] == "/headers?full=1"
    headers = dict(seen["headers"])
    assert headers["x-request-id"] == "abc-1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert reply.headers["x-request-id"] == "abc-1"


async def test_requests_take_turns_across_upstreams(backends: Any) -> None:
    first, second = await start_backend(backends), await start_backend(backends)
    gateway = GatewayServer.from_config(
        {"routes": [{"path": "/**", "upstreams": [_upstream(first), _upstream(second)]}]}
    )
    async with started_gateway(gateway) as client:
        for _ in range(6):
            assert (await client.get("/hello")).status_code == 200
    assert len(first.requests) == len(second.requests) == 3


async def test_unknown_paths_get_404_and_wrong_methods_405_as_json(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {"path": "/api/orders/**", "methods": ["GET"], "upstreams": [_upstream(backend)]}
            ]
        }
    )
    async with started_gateway(gateway) as client:
        missing = await client.get("/nowhere")
        wrong = await client.delete("/api/orders/1")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"


async def test_dot_segments_cannot_reach_another_routes_service(backends: Any) -> None:
    users, admin = await start_backend(backends), await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {"path": "/api/users/**", "upstreams": [_upstream(users)]},
                {"path": "/api/admin/**", "upstreams": [_upstream(admin)]},
            ]
        }
    )
    async with started_gateway(gateway) as client:
        sneaky = await client.get("/api/users/..%2Fadmin/x")
        resolved = await client.get("/api/users/%2e%2e/admin/x")
    assert sneaky.status_code == 400
    # `..` resolves before matching: the request is for /api/admin/x, routed as such
    assert resolved.status_code == 200
    assert [r.target for r in admin.requests] == ["/api/admin/x"]
    assert users.requests == []


async def test_the_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(
    backends: Any,
) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [_upstream(backend)],
                    "rate_limit": {"strategy": "sliding-window", "max": 2, "window": "1m"},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        statuses = [(await client.get("/x")).status_code for _ in range(2)]
        refused = await client.get("/x")
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 59
    assert refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert len(backend.requests) == 2


async def test_the_breaker_opens_on_failures_then_answers_503_without_calling(
    backends: Any,
) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "name": "payments",
                    "path": "/pay/**",
                    "upstreams": [_upstream(backend)],
                    "rewrite": "/status/500",
                    "circuit_breaker": {"failure_threshold": 3, "reset_timeout": "30s"},
                }
            ]
        }
    )
    opened: list[dict[str, Any]] = []
    gateway.on("circuit:open", opened.append)
    async with started_gateway(gateway) as client:
        failures = [(await client.post("/pay/x")).status_code for _ in range(3)]
        rejected = await client.post("/pay/x")
    assert failures == [500, 500, 500]
    assert rejected.status_code == 503
    assert rejected.json()["error"] == "circuit_open"
    assert 29 <= int(rejected.headers["retry-after"]) <= 30
    assert len(backend.requests) == 3
    assert [e["route"] for e in opened] == ["payments"]


async def test_a_refused_connection_is_retried_on_another_instance(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [f"127.0.0.1:{closed_port()}", _upstream(backend)],
                    "retry": {"max_attempts": 2, "base_delay": 0},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        statuses = [(await client.post("/orders", content=b"{}")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 200]


async def test_a_5xx_is_retried_for_idempotent_requests_only(backends: Any) -> None:
    good = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [_upstream(good)],
                    "retry": {"max_attempts": 3, "base_delay": 0},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        await client.get("/hello")
        good.requests.clear()
        reply = await client.get("/status/503")
        posted = await client.post("/status/503")
    assert reply.status_code == 503
    assert [r.method for r in good.requests] == ["GET", "GET", "GET", "POST"]
    assert posted.status_code == 503


async def test_a_silent_upstream_gets_504_at_the_routes_timeout(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {"routes": [{"path": "/**", "upstreams": [_upstream(backend)], "timeout": "200ms"}]}
    )
    async with started_gateway(gateway) as client:
        reply = await client.get("/silent")
    assert reply.status_code == 504
    assert reply.json()["error"] == "upstream_timeout"


async def test_unreachable_upstreams_get_502(backends: Any) -> None:
    gateway = GatewayServer.from_config(
        {"routes": [{"path": "/**", "upstreams": [f"127.0.0.1:{closed_port()}"]}]}
    )
    async with started_gateway(gateway) as client:
        reply = await client.get("/x")
    assert reply.status_code == 502
    assert reply.json()["error"] == "upstream_failed"


async def test_a_header_picks_the_version_and_an_unknown_one_gets_400(backends: Any) -> None:
    v1, v2 = await start_backend(backends), await start_backend(backends)
    registry = MemoryRegistryBackend()
    for backend, tag in ((v1, "v1"), (v2, "v2")):
        await registry.register(
            ServiceInstance(
                id=f"user-{tag}",
                name="user-service",
                host="127.0.0.1",
                port=backend.port,
                tags=(tag,),
            ),
            ttl=60,
        )
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/api/users/**",
                    "service_name": "user-service",
                    "strip_prefix": "/api/users",
                    "version_route": {
                        "strategy": "header",
                        "header": "X-API-Version",
                        "default_version": "v1",
                        "routes": {"v1": {"weight": 100}, "v2": {"weight": 0}},
                    },
                }
            ]
        },
        registry,
    )
    async with started_gateway(gateway) as client:
        plain = [(await client.get("/api/users/1")).status_code for _ in range(3)]
        asked = await client.get("/api/users/1", headers={"X-API-Version": "v2"})
        unknown = await client.get("/api/users/1", headers={"X-API-Version": "v9"})
    assert plain == [200, 200, 200]
    assert asked.status_code == 200
    assert len(v1.requests) == 3
    assert len(v2.requests) == 1
    assert unknown.status_code == 400
    assert "'v1', 'v2'" in unknown.json()["message"]
    snapshot = gateway.get_metrics().get_snapshot()
    assert snapshot.routes["/api/users/**"].versions["v1"].total_calls == 3


async def test_routes_added_and_removed_at_runtime_take_effect_at_once(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config({"routes": []})
    events: list[str] = []
    gateway.on("route:added", lambda e: events.append("added " + e["route"]))
    gateway.on("route:removed", lambda e: events.append("removed " + e["route"]))
    async with started_gateway(gateway) as client:
        before = await client.get("/api/products/1")
        gateway.add_route({"path": "/api/products/**", "upstreams": [_upstream(backend)]})
        during = await client.get("/api/products/1")
        assert gateway.remove_route("/api/products/**")
        after = await client.get("/api/products/1")
    assert [before.status_code, during.status_code, after.status_code] == [404, 200, 404]
    assert events == ["added /api/products/**", "removed /api/products/**"]


async def test_mirrored_requests_reach_the_mirror_and_leave_the_answer_alone(
    backends: Any,
) -> None:
    main, shadow = await start_backend(backends), await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [_upstream(main)],
                    "traffic_policy": {
                        "mirror": {
                            "upstreams": [_upstream(shadow)],
                            "percentage": 100,
                            "wait_for_response": True,
                        }
                    },
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        reply = await client.post("/orders", content=b'{"n": 1}')
    assert reply.status_code == 200
    assert reply.text == "ok /orders"
    assert [(r.method, r.target, r.body_size) for r in shadow.requests] == [("POST", "/orders", 8)]


async def test_a_cors_preflight_is_answered_by_the_gateway(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "middleware": {"cors": {"allow_origins": ["https://app.example"]}},
            "routes": [{"path": "/**", "upstreams": [_upstream(backend)]}],
        }
    )
    async with started_gateway(gateway) as client:
        preflight = await client.options(
            "/x", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
        )
        actual = await client.get("/x", headers={"Origin": "https://app.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert actual.headers["access-control-allow-origin"] == "https://app.example"
    assert [r.method for r in backend.requests] == ["GET"]


async def test_a_failing_instance_is_ejected_and_traffic_goes_to_the_others(
    backends: Any,
) -> None:
    good = await start_backend(backends)
    dead = f"127.0.0.1:{closed_port()}"
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [dead, _upstream(good)],
                    "outlier_detection": {"consecutive_failures": 2, "ejection_time": "30s"},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        statuses = [(await client.get("/x")).status_code for _ in range(10)]
    # round-robin sends every other request to the dead one until it is ejected
    assert statuses.count(502) == 2
    assert statuses[-5:] == [200] * 5


async def test_retry_non_idempotent_lets_a_post_try_again(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [_upstream(backend)],
                    "retry": {"max_attempts": 3, "base_delay": 0, "retry_non_idempotent": True},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        reply = await client.post("/status/503", content=b"{}")
    assert reply.status_code == 503
    assert [r.method for r in backend.requests] == ["POST", "POST", "POST"]


async def test_the_retry_budget_caps_retries_under_a_storm(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [_upstream(backend)],
                    "retry": {"max_attempts": 3, "base_delay": 0, "budget_percent": 10},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        for _ in range(20):
            await client.get("/status/503")
    # without a budget: 60 calls; the budget's floor lets some retries through,
    # but far fewer than two per request
    assert 20 < len(backend.requests) < 60


async def test_access_log_lines_go_to_their_own_file(backends: Any, tmp_path: Any) -> None:
    import json

    backend = await start_backend(backends)
    log_path = tmp_path / "access.log"
    gateway = GatewayServer.from_config(
        {
            "middleware": {"access_log": str(log_path)},
            "routes": [{"name": "all", "path": "/**", "upstreams": [_upstream(backend)]}],
        }
    )
    async with started_gateway(gateway) as client:
        await client.get("/a", headers={"X-Request-Id": "req-1"})
        await client.get("/status/503")
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(e["path"], e["status"], e["route"]) for e in entries] == [
        ("/a", 200, "all"),
        ("/status/503", 503, "all"),
    ]
    assert entries[0]["request_id"] == "req-1"


async def test_an_open_circuit_shows_as_failures_in_the_routes_metrics(backends: Any) -> None:
    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "name": "pay",
                    "path": "/**",
                    "upstreams": [_upstream(backend)],
                    "rewrite": "/status/500",
                    "circuit_breaker": {"failure_threshold": 1, "reset_timeout": "30s"},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        statuses = [(await client.get("/x")).status_code for _ in range(5)]
    assert statuses == [500, 503, 503, 503, 503]
    snapshot = gateway.get_metrics().get_snapshot().routes["pay"].total
    assert (snapshot.total_calls, snapshot.failure_calls) == (5, 5)


async def test_retries_do_not_steer_the_next_first_try_onto_the_failing_instance(
    backends: Any,
) -> None:
    import asyncio

    good = await start_backend(backends)
    failing_requests = 0

    async def always_503(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal failing_requests
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                failing_requests += 1
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    failing = await asyncio.start_server(always_503, "127.0.0.1", 0)
    registry = MemoryRegistryBackend()
    addresses = {"a": good.port, "b": failing.sockets[0].getsockname()[1]}
    for name, port in addresses.items():
        await registry.register(
            ServiceInstance(id=name, name="inv", host="127.0.0.1", port=port), ttl=60
        )
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "service_name": "inv",
                    "retry": {"max_attempts": 2, "base_delay": 0, "budget_percent": None},
                }
            ]
        },
        registry,
    )
    try:
        async with started_gateway(gateway) as client:
            statuses = [(await client.get("/x")).status_code for _ in range(20)]
    finally:
        failing.close()
    assert statuses == [200] * 20
    # round-robin alternates first tries: b gets its 10, not (nearly) all 20
    assert failing_requests == 10


async def test_a_probe_whose_client_leaves_hands_its_half_open_slot_back(backends: Any) -> None:
    import anyio
    import httpx

    backend = await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [_upstream(backend)],
                    "circuit_breaker": {"failure_threshold": 1, "reset_timeout": "200ms"},
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        assert (await client.get("/status/500")).status_code == 500
        assert (await client.get("/x")).status_code == 503
        await anyio.sleep(0.25)
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/silent", timeout=0.3)  # the probe; its client gives up
        await anyio.sleep(0.1)
        # the slot is free again: the next request is the probe, and closes the circuit
        assert (await client.get("/x")).status_code == 200


async def test_a_request_whose_client_leaves_is_not_counted_in_flight_forever(
    backends: Any,
) -> None:
    import anyio
    import httpx

    first, second = await start_backend(backends), await start_backend(backends)
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {
                    "path": "/**",
                    "upstreams": [_upstream(first), _upstream(second)],
                    "load_balancing_strategy": "least-connections",
                }
            ]
        }
    )
    async with started_gateway(gateway) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/silent", timeout=0.3)  # its client gives up
        await anyio.sleep(0.1)
        stuck = first if first.requests else second
        stuck.requests.clear()
        for _ in range(4):
            assert (await client.get("/x")).status_code == 200
    # ties rotate: the instance of the abandoned request takes its turns again
    assert len(stuck.requests) == 2
