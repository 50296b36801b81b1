"""A gateway's state as Prometheus families: what ``GET /metrics`` on the
admin port answers.

Everything here reads state the gateway already keeps; nothing is counted
twice. The instance lists are passed in, because reading them may wait on
the discovery cache and this module does no I/O.

| family | type | labels |
|---|---|---|
| `meshgate_requests_total` | counter | route, status |
| `meshgate_request_duration_ms` | summary (quantiles 0.5/0.95/0.99) | route, version, quantile |
| `meshgate_window_requests` | gauge | route, version |
| `meshgate_route_failure_rate` | gauge (percent) | route, version |
| `meshgate_circuit_state` | gauge (1 for the current state) | route, state |
| `meshgate_circuit_rejected_total` | counter | route |
| `meshgate_instances` | gauge | route, state (up, ejected) |
| `meshgate_in_flight_requests` | gauge | |
| `meshgate_open_connections` | gauge | |
| `meshgate_canary_weight` | gauge (percent) | route, version |
| `meshgate_canary_state` | gauge (1 for the current state) | route, state |
| `meshgate_mirror_total` | counter | route, outcome |
| `meshgate_upstream_connections` | gauge | upstream, state (idle, active) |
| `meshgate_upstream_connects_total` | counter | upstream |
| `meshgate_upstream_reuses_total` | counter | upstream |

Latency quantiles, window requests and failure rates cover the metrics'
rolling window (`GatewayMetrics.window`, 60 s by default), as the admin
snapshot does. The summary has no `_count`/`_sum`: Prometheus reads those as
counters that only grow, and the window's totals fall as calls leave it, so
they are the `meshgate_window_requests` gauge instead; request rates come from
`meshgate_requests_total`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, get_args

from meshgate.bus.instance import ServiceInstance
from meshgate.gateway.canary_status import RolloutState
from meshgate.gateway.http.upstream import PoolStats
from meshgate.gateway.prometheus import Exposition
from meshgate.resilience.breaker_core import CircuitState

if TYPE_CHECKING:  # the server imports the admin API, which imports this
    from meshgate.gateway.server import GatewayServer

Labels = dict[str, str]
Sample = tuple[Labels, float]

_QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
_MIRROR_OUTCOMES = ("sent", "failed", "dropped_busy", "skipped_body", "skipped_no_instance")
_ROLLOUT_STATES: tuple[RolloutState, ...] = get_args(RolloutState)


def gateway_exposition(
    gateway: GatewayServer,
    *,
    now: float,
    instances: Mapping[str, Sequence[ServiceInstance]],
    pool_stats: Mapping[str, PoolStats] | None = None,
) -> Exposition:
    """The gateway's families at `now` (the gateway's clock, for breakers and
    ejections). `instances` maps route names to the instances each route's
    source gives now; a route left out (its lookup failed) has no
    `meshgate_instances` samples. `pool_stats` maps ``host:port`` to the
    upstream pool's stats.

    >>> from meshgate.gateway.server import GatewayServer
    >>> gateway = GatewayServer.from_config({"routes": [
    ...     {"path": "/api/**", "upstreams": ["127.0.0.1:9001"]}]})
    >>> gateway.get_metrics().record("/api/**", "default", 200, True, 12.0)
    >>> text = gateway_exposition(gateway, now=0.0, instances={}).render().decode()
    >>> 'meshgate_requests_total{route="/api/**",status="200"} 1' in text
    True
    """
    text = Exposition()
    _request_families(text, gateway)
    _circuit_families(text, gateway, now)
    text.family(
        "meshgate_instances",
        "gauge",
        "Instances each route may send to (up) and those outlier detection took out (ejected).",
        _instance_samples(gateway, instances, now),
    )
    http = gateway.http_server
    text.family(
        "meshgate_in_flight_requests",
        "gauge",
        "Requests whose handling has begun and not ended, on the main port.",
        [({}, 0 if http is None else http.in_flight)],
    )
    text.family(
        "meshgate_open_connections",
        "gauge",
        "Client connections open on the main port.",
        [({}, 0 if http is None else http.active_connections)],
    )
    _canary_families(text, gateway)
    text.family(
        "meshgate_mirror_total",
        "counter",
        "Mirrored requests by outcome: sent, failed, or not sent and why.",
        _mirror_samples(gateway),
    )
    _pool_families(text, pool_stats or {})
    return text


def _request_families(text: Exposition, gateway: GatewayServer) -> None:
    metrics = gateway.get_metrics()
    window = f"{metrics.window:g}"
    text.family(
        "meshgate_requests_total",
        "counter",
        "Requests answered, by route and status code, since the gateway started.",
        (
            ({"route": route, "status": str(status)}, count)
            for route, status, count in sorted(metrics.status_counts())
        ),
    )
    snapshot = metrics.get_snapshot()
    per_version = [
        (route, version, numbers)
        for route, route_snapshot in sorted(snapshot.routes.items())
        for version, numbers in sorted(route_snapshot.versions.items())
    ]
    text.family(
        "meshgate_request_duration_ms",
        "summary",
        f"Request latency in milliseconds over the last {window}s, by route and version.",
        (
            ({"route": route, "version": version, "quantile": quantile}, getattr(numbers, field))
            for route, version, numbers in per_version
            for quantile, field in _QUANTILES
        ),
    )
    text.family(
        "meshgate_window_requests",
        "gauge",
        f"Requests answered in the last {window}s, by route and version.",
        (
            ({"route": route, "version": version}, numbers.total_calls)
            for route, version, numbers in per_version
        ),
    )
    text.family(
        "meshgate_route_failure_rate",
        "gauge",
        f"Percent of requests that failed in the last {window}s, by route and version.",
        (
            ({"route": route, "version": version}, numbers.failure_rate)
            for route, version, numbers in per_version
        ),
    )


def _circuit_families(text: Exposition, gateway: GatewayServer, now: float) -> None:
    breakers = [
        (runtime.name, runtime.breaker.metrics(now))
        for runtime in gateway.runtimes()
        if runtime.breaker is not None
    ]
    text.family(
        "meshgate_circuit_state",
        "gauge",
        "1 for the state each route's circuit breaker is in, 0 for the others.",
        (
            ({"route": route, "state": state.value}, 1 if state is numbers.state else 0)
            for route, numbers in breakers
            for state in CircuitState
        ),
    )
    text.family(
        "meshgate_circuit_rejected_total",
        "counter",
        "Requests each route's circuit breaker refused, since the route was built.",
        (({"route": route}, numbers.rejected) for route, numbers in breakers),
    )


def _instance_samples(
    gateway: GatewayServer, instances: Mapping[str, Sequence[ServiceInstance]], now: float
) -> Iterator[Sample]:
    for runtime in gateway.runtimes():
        seen = instances.get(runtime.name)
        if seen is None:
            continue
        outliers = runtime.outliers
        ejected_ids = set() if outliers is None else set(outliers.ejected(now))
        ejected = sum(1 for instance in seen if instance.id in ejected_ids)
        yield {"route": runtime.name, "state": "up"}, len(seen) - ejected
        yield {"route": runtime.name, "state": "ejected"}, ejected


def _canary_families(text: Exposition, gateway: GatewayServer) -> None:
    canaries = sorted(gateway.canaries().items())
    text.family(
        "meshgate_canary_weight",
        "gauge",
        "Percent of a canary route's traffic each version gets.",
        (
            sample
            for route, engine in canaries
            for sample in (
                (
                    {"route": route, "version": engine.config.stable.version},
                    100.0 - engine.canary_weight,
                ),
                ({"route": route, "version": engine.config.canary.version}, engine.canary_weight),
            )
        ),
    )
    text.family(
        "meshgate_canary_state",
        "gauge",
        "1 for the state each canary rollout is in, 0 for the others.",
        (
            ({"route": route, "state": state}, 1 if state == engine.state else 0)
            for route, engine in canaries
            for state in _ROLLOUT_STATES
        ),
    )


def _mirror_samples(gateway: GatewayServer) -> Iterator[Sample]:
    for runtime in gateway.runtimes():
        mirror = runtime.mirror
        if mirror is None:
            continue
        for outcome in _MIRROR_OUTCOMES:
            yield {"route": runtime.name, "outcome": outcome}, getattr(mirror.stats, outcome)


def _pool_families(text: Exposition, pool_stats: Mapping[str, PoolStats]) -> None:
    pools = sorted(pool_stats.items())
    text.family(
        "meshgate_upstream_connections",
        "gauge",
        "Keep-alive connections to each upstream, idle and in use.",
        (
            sample
            for upstream, stats in pools
            for sample in (
                ({"upstream": upstream, "state": "idle"}, stats.idle),
                ({"upstream": upstream, "state": "active"}, stats.active),
            )
        ),
    )
    text.family(
        "meshgate_upstream_connects_total",
        "counter",
        "Connections opened to each upstream.",
        (({"upstream": upstream}, stats.connects) for upstream, stats in pools),
    )
    text.family(
        "meshgate_upstream_reuses_total",
        "counter",
        "Requests to each upstream that reused an open connection.",
        (({"upstream": upstream}, stats.reuses) for upstream, stats in pools),
    )


__all__ = ["gateway_exposition"]
