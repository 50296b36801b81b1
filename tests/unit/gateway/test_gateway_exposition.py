"""The gateway's Prometheus families, read back with prometheus-client's own
parser: names, types, labels and values."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.gateway.gateway_exposition import gateway_exposition
from meshgate.gateway.http.upstream import PoolStats
from meshgate.gateway.server import GatewayServer
from meshgate.resilience.clock import ManualClock

Key = frozenset[tuple[str, str]]

CANARY = {
    "stable": {"version": "1.0.0", "weight": 75},
    "canary": {"version": "2.0.0", "weight": 25},
}


def _gateway(*routes: dict[str, Any], clock: ManualClock | None = None) -> GatewayServer:
    return GatewayServer.from_config(
        {"routes": list(routes)}, MemoryRegistryBackend(), clock=clock or ManualClock()
    )


def _parse(gateway: GatewayServer, **options: Any) -> dict[str, Any]:
    options.setdefault("instances", {})
    text = gateway_exposition(gateway, now=options.pop("now", 0.0), **options)
    return {f.name: f for f in text_string_to_metric_families(text.render().decode())}


def _values(family: Any, sample_name: str | None = None) -> dict[Key, float]:
    return {
        frozenset(s.labels.items()): s.value
        for s in family.samples
        if sample_name is None or s.name == sample_name
    }


def _key(**labels: str) -> Key:
    return frozenset(labels.items())


def test_every_family_is_there_with_its_type_even_before_any_request() -> None:
    families = _parse(_gateway({"path": "/a/**", "upstreams": ["127.0.0.1:9001"]}))
    types = {name: family.type for name, family in families.items()}
    assert types == {
        "meshgate_requests": "counter",
        "meshgate_request_duration_ms": "summary",
        "meshgate_window_requests": "gauge",
        "meshgate_route_failure_rate": "gauge",
        "meshgate_circuit_state": "gauge",
        "meshgate_circuit_rejected": "counter",
        "meshgate_instances": "gauge",
        "meshgate_in_flight_requests": "gauge",
        "meshgate_open_connections": "gauge",
        "meshgate_canary_weight": "gauge",
        "meshgate_canary_state": "gauge",
        "meshgate_mirror": "counter",
        "meshgate_upstream_connections": "gauge",
        "meshgate_upstream_connects": "counter",
        "meshgate_upstream_reuses": "counter",
    }
    assert _values(families["meshgate_in_flight_requests"]) == {_key(): 0}
    assert _values(families["meshgate_open_connections"]) == {_key(): 0}


def test_requests_are_counted_by_route_and_status() -> None:
    gateway = _gateway(
        {"path": "/a/**", "upstreams": ["127.0.0.1:9001"]},
        {"path": "/b/**", "upstreams": ["127.0.0.1:9002"]},
    )
    metrics = gateway.get_metrics()
    for _ in range(3):
        metrics.record("/a/**", "default", 200, True, 10.0)
    metrics.record("/a/**", "default", 502, False, 40.0)
    metrics.record("/b/**", "default", 404, True, 1.0)
    requests = _values(_parse(gateway)["meshgate_requests"], "meshgate_requests_total")
    assert requests == {
        _key(route="/a/**", status="200"): 3,
        _key(route="/a/**", status="502"): 1,
        _key(route="/b/**", status="404"): 1,
    }


def test_latency_quantiles_window_requests_and_failure_rate_are_per_version() -> None:
    gateway = _gateway({"path": "/orders/**", "service_name": "orders", "canary": CANARY})
    metrics = gateway.get_metrics()
    for latency in range(1, 101):  # 1..100 ms on the stable
        metrics.record("/orders/**", "1.0.0", 200, True, float(latency))
    metrics.record("/orders/**", "2.0.0", 200, True, 5.0)
    metrics.record("/orders/**", "2.0.0", 503, False, 5.0)
    families = _parse(gateway)
    quantiles = _values(families["meshgate_request_duration_ms"])
    stable = {
        q: quantiles[_key(route="/orders/**", version="1.0.0", quantile=q)]
        for q in ("0.5", "0.95", "0.99")
    }
    # nearest-rank percentiles, within the histogram's 1/128 resolution
    assert abs(stable["0.5"] - 50) <= 1
    assert abs(stable["0.95"] - 95) <= 1
    assert abs(stable["0.99"] - 99) <= 1
    assert _values(families["meshgate_window_requests"]) == {
        _key(route="/orders/**", version="1.0.0"): 100,
        _key(route="/orders/**", version="2.0.0"): 2,
    }
    assert _values(families["meshgate_route_failure_rate"]) == {
        _key(route="/orders/**", version="1.0.0"): 0.0,
        _key(route="/orders/**", version="2.0.0"): 50.0,
    }


def test_the_circuit_state_is_one_for_the_current_state_only() -> None:
    gateway = _gateway(
        {"path": "/pay/**", "upstreams": ["127.0.0.1:9001"], "circuit_breaker": {}},
        {"path": "/plain/**", "upstreams": ["127.0.0.1:9002"]},
    )
    runtime = gateway.route_runtime("/pay/**")
    assert runtime is not None
    assert runtime.breaker is not None
    runtime.breaker.force_open()
    runtime.breaker.allow(0.0)  # refused
    families = _parse(gateway)
    states = _values(families["meshgate_circuit_state"])
    assert states == {
        _key(route="/pay/**", state="closed"): 0,
        _key(route="/pay/**", state="open"): 0,
        _key(route="/pay/**", state="half-open"): 0,
        _key(route="/pay/**", state="forced-open"): 1,
        _key(route="/pay/**", state="disabled"): 0,
    }
    rejected = _values(families["meshgate_circuit_rejected"], "meshgate_circuit_rejected_total")
    assert rejected == {_key(route="/pay/**"): 1}


def test_an_open_circuit_past_its_deadline_reads_as_half_open() -> None:
    clock = ManualClock()
    gateway = _gateway(
        {
            "path": "/pay/**",
            "upstreams": ["127.0.0.1:9001"],
            "circuit_breaker": {"failure_threshold": 1, "reset_timeout": "10s"},
        },
        clock=clock,
    )
    runtime = gateway.route_runtime("/pay/**")
    assert runtime is not None
    assert runtime.breaker is not None
    breaker = runtime.breaker
    breaker.on_failure(0.1, 0.0, breaker.epoch)
    assert (
        _values(_parse(gateway, now=5.0)["meshgate_circuit_state"])[
            _key(route="/pay/**", state="open")
        ]
        == 1
    )
    later = _values(_parse(gateway, now=11.0)["meshgate_circuit_state"])
    assert later[_key(route="/pay/**", state="half-open")] == 1


def test_instances_count_up_and_ejected_and_skip_routes_not_looked_up() -> None:
    gateway = _gateway(
        {
            "path": "/a/**",
            "upstreams": ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"],
            "outlier_detection": {"consecutive_failures": 1, "ejection_time": "30s"},
        },
        {"path": "/b/**", "upstreams": ["127.0.0.1:9004"]},
    )
    runtime = gateway.route_runtime("/a/**")
    assert runtime is not None
    assert runtime.outliers is not None
    assert runtime.outliers.on_result("127.0.0.1:9002", False, now=0.0, population=3)
    seen = [
        ServiceInstance(id=f"127.0.0.1:{port}", name="/a/**", host="127.0.0.1", port=port)
        for port in (9001, 9002, 9003)
    ]
    instances = _values(_parse(gateway, now=1.0, instances={"/a/**": seen})["meshgate_instances"])
    assert instances == {
        _key(route="/a/**", state="up"): 2,
        _key(route="/a/**", state="ejected"): 1,
    }


def test_canary_weights_name_each_version_and_the_state_follows_the_rollout() -> None:
    gateway = _gateway({"path": "/orders/**", "service_name": "orders", "canary": CANARY})
    families = _parse(gateway)
    assert _values(families["meshgate_canary_weight"]) == {
        _key(route="/orders/**", version="1.0.0"): 75.0,
        _key(route="/orders/**", version="2.0.0"): 25.0,
    }
    assert _values(families["meshgate_canary_state"])[_key(route="/orders/**", state="active")] == 1
    gateway.canaries()["/orders/**"].promote()
    families = _parse(gateway)
    assert (
        _values(families["meshgate_canary_weight"])[_key(route="/orders/**", version="2.0.0")]
        == 100.0
    )
    states = _values(families["meshgate_canary_state"])
    assert states[_key(route="/orders/**", state="promoted")] == 1
    assert states[_key(route="/orders/**", state="active")] == 0


def test_mirror_outcomes_are_counted_per_route() -> None:
    gateway = _gateway(
        {
            "path": "/a/**",
            "upstreams": ["127.0.0.1:9001"],
            "traffic_policy": {"mirror": {"upstreams": ["127.0.0.1:9009"]}},
        }
    )
    runtime = gateway.route_runtime("/a/**")
    assert runtime is not None
    assert runtime.mirror is not None
    runtime.mirror.stats.sent = 7
    runtime.mirror.stats.dropped_busy = 2
    mirrored = _values(_parse(gateway)["meshgate_mirror"], "meshgate_mirror_total")
    assert mirrored == {
        _key(route="/a/**", outcome="sent"): 7,
        _key(route="/a/**", outcome="failed"): 0,
        _key(route="/a/**", outcome="dropped_busy"): 2,
        _key(route="/a/**", outcome="skipped_body"): 0,
        _key(route="/a/**", outcome="skipped_no_instance"): 0,
    }


def test_upstream_pools_report_connections_connects_and_reuses() -> None:
    gateway = _gateway({"path": "/a/**", "upstreams": ["127.0.0.1:9001"]})
    stats = PoolStats(idle=2, active=1, connects=3, reuses=40, stale_retries=0)
    families = _parse(gateway, pool_stats={"127.0.0.1:9001": stats})
    assert _values(families["meshgate_upstream_connections"]) == {
        _key(upstream="127.0.0.1:9001", state="idle"): 2,
        _key(upstream="127.0.0.1:9001", state="active"): 1,
    }
    connects = families["meshgate_upstream_connects"]
    reuses = families["meshgate_upstream_reuses"]
    assert _values(connects, "meshgate_upstream_connects_total") == {
        _key(upstream="127.0.0.1:9001"): 3
    }
    assert _values(reuses, "meshgate_upstream_reuses_total") == {
        _key(upstream="127.0.0.1:9001"): 40
    }
