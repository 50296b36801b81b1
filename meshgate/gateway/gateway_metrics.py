"""What the gateway measured: per route and per version, over a rolling
window (the reference's snapshot shape), plus totals that only grow (for
Prometheus), plus the per-interval batches that replicas publish for the
canary controller.

Recording is on the hot path: two dictionary lookups and two histogram
records per request, no allocation once a route's collectors exist.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from meshgate.bus.messages import VersionMetrics
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.latency_histogram import LatencyHistogram, bucket_bounds
from meshgate.resilience.metrics import MetricsCollector, MetricsSnapshot

UNVERSIONED = "default"
"""The version name of requests on routes without versions or canaries."""


class RouteMetricsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    total: MetricsSnapshot
    versions: dict[str, MetricsSnapshot]


class GatewayMetricsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """`aggregated` covers every route; `routes` holds each route's total and
    its versions. Latencies in ms, `failure_rate` in percent."""

    aggregated: MetricsSnapshot
    routes: dict[str, RouteMetricsSnapshot]


class _Interval:
    """One version's traffic since the last `take_interval`."""

    __slots__ = ("errors", "histogram")

    def __init__(self) -> None:
        self.histogram = LatencyHistogram()
        self.errors = 0

    def take(self) -> VersionMetrics:
        histogram = self.histogram
        buckets: dict[float, int] = {}
        for index, count in histogram.export().buckets.items():
            buckets[bucket_bounds(index)[1]] = count
        batch = VersionMetrics(
            requests=histogram.count,
            errors=self.errors,
            latency_sum_ms=histogram.sum,
            latency_buckets=buckets,
        )
        histogram.reset()
        self.errors = 0
        return batch


class _VersionMetrics:
    __slots__ = ("interval", "window")

    def __init__(self, window: float, clock: Clock) -> None:
        self.window = MetricsCollector(window, clock=clock)
        self.interval = _Interval()


class _RouteMetrics:
    __slots__ = ("_clock", "_window", "status_counts", "total", "versions")

    def __init__(self, window: float, clock: Clock) -> None:
        self._window = window
        self._clock = clock
        self.total = MetricsCollector(window, clock=clock)
        self.versions: dict[str, _VersionMetrics] = {}
        # status code -> requests answered with it, since start (Prometheus counters)
        self.status_counts: dict[int, int] = {}

    def version(self, name: str) -> _VersionMetrics:
        metrics = self.versions.get(name)
        if metrics is None:
            metrics = self.versions[name] = _VersionMetrics(self._window, self._clock)
        return metrics


class GatewayMetrics:
    """Requests per route and version.

    >>> from meshgate.resilience.clock import ManualClock
    >>> metrics = GatewayMetrics(clock=ManualClock())
    >>> metrics.record("users", "v1", 200, True, 12.0)
    >>> metrics.record("users", "v2", 502, False, 30.0)
    >>> snapshot = metrics.get_snapshot()
    >>> snapshot.aggregated.total_calls, snapshot.routes["users"].versions["v2"].failure_rate
    (2, 100.0)
    """

    __slots__ = ("_clock", "_routes", "window")

    def __init__(self, window: float = 60.0, *, clock: Clock = monotonic) -> None:
        self.window = window
        self._clock = clock
        self._routes: dict[str, _RouteMetrics] = {}

    def record(
        self,
        route: str,
        version: str,
        status: int,
        ok: bool,
        latency_ms: float,
        *,
        reached_upstream: bool = True,
    ) -> None:
        """One answered request: `ok` is False when it counts as a failure
        (any 5xx, the gateway's own 502/503/504 included, so that a route
        whose circuit is open does not look healthy).

        Only requests that `reached_upstream` go into the interval batches
        that the canary controller judges versions by: a version must not be
        blamed for the gateway's refusals (an open circuit, a full bulkhead).
        """
        metrics = self._routes.get(route)
        if metrics is None:
            metrics = self._routes[route] = _RouteMetrics(self.window, self._clock)
        per_version = metrics.version(version)
        counts = metrics.status_counts
        counts[status] = counts.get(status, 0) + 1
        if ok:
            metrics.total.record_success(latency_ms)
            per_version.window.record_success(latency_ms)
        else:
            metrics.total.record_failure(latency_ms)
            per_version.window.record_failure(latency_ms)
        if reached_upstream:
            per_version.interval.histogram.record(latency_ms)
            if not ok:
                per_version.interval.errors += 1

    def get_snapshot(self) -> GatewayMetricsSnapshot:
        routes = {
            name: RouteMetricsSnapshot(
                total=metrics.total.get_snapshot(),
                versions={v: m.window.get_snapshot() for v, m in metrics.versions.items()},
            )
            for name, metrics in self._routes.items()
        }
        histograms = [m.total.get_histogram() for m in self._routes.values()]
        failures = sum(r.total.failure_calls for r in routes.values())
        aggregated = MetricsSnapshot.from_histogram(
            LatencyHistogram.merged(histograms), failure_calls=failures
        )
        return GatewayMetricsSnapshot(aggregated=aggregated, routes=routes)

    def take_interval(self, route: str) -> dict[str, VersionMetrics]:
        """Each version's traffic on `route` since the last call, and start a
        new interval: what a replica publishes on ``mesh.metrics.<route>``."""
        metrics = self._routes.get(route)
        if metrics is None:
            return {}
        return {name: m.interval.take() for name, m in metrics.versions.items()}

    def route_names(self) -> list[str]:
        return sorted(self._routes)

    def status_counts(self) -> Iterator[tuple[str, int, int]]:
        """(route, status, requests) since start, for counters that only grow."""
        for route, metrics in self._routes.items():
            for status, count in metrics.status_counts.items():
                yield route, status, count

    def forget(self, route: str) -> None:
        self._routes.pop(route, None)
