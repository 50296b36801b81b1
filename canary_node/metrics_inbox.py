"""`MetricsInbox`: what the gateway replicas reported since the controller's
last tick, summed per route and version.

Each replica publishes one `MetricsReport` per route per interval. Counts
and latency histograms add (every replica uses the same bucket bounds), so
the sum over replicas is exactly what one gateway carrying all the traffic
would have counted, and the controller judges the cluster as a whole. A
report that arrives long after its interval ended (buffered through a NATS
outage) would count old traffic as new, so it is dropped; so is one for a
route the controller has no canary for.

>>> from meshgate.bus.messages import MetricsReport, VersionMetrics
>>> inbox = MetricsInbox(["orders"], max_age=10.0)
>>> for replica in ("gw-1", "gw-2"):
...     inbox.add(MetricsReport(route="orders", replica=replica, interval_start=99.0,
...                             interval_end=100.0,
...                             versions={"2.0.0": VersionMetrics(requests=10, errors=1)}),
...               wall_now=100.5)
True
True
>>> traffic = inbox.drain()["orders"]
>>> traffic.versions["2.0.0"].requests, traffic.versions["2.0.0"].errors, sorted(traffic.replicas)
(20, 2, ['gw-1', 'gw-2'])
>>> inbox.drain()
{}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from meshgate.bus.messages import MetricsReport, VersionMetrics

DEFAULT_MAX_AGE = 10.0
"""Seconds after its interval's end that a report still counts."""


def add_version_metrics(a: VersionMetrics, b: VersionMetrics) -> VersionMetrics:
    """The traffic of `a` and `b` together: counts, latency sums and
    histogram buckets add.

    >>> total = add_version_metrics(
    ...     VersionMetrics(requests=2, errors=1, latency_sum_ms=30.0, latency_buckets={10.0: 2}),
    ...     VersionMetrics(requests=1, latency_sum_ms=20.0, latency_buckets={25.0: 1}))
    >>> total.requests, total.errors, total.latency_sum_ms, total.latency_buckets
    (3, 1, 50.0, {10.0: 2, 25.0: 1})
    """
    buckets = dict(a.latency_buckets)
    for bound, count in b.latency_buckets.items():
        buckets[bound] = buckets.get(bound, 0) + count
    return VersionMetrics(
        requests=a.requests + b.requests,
        errors=a.errors + b.errors,
        latency_sum_ms=a.latency_sum_ms + b.latency_sum_ms,
        latency_buckets=buckets,
    )


@dataclass
class RouteTraffic:
    """One route's summed traffic since the last drain, per version, and the
    replicas that reported it."""

    versions: dict[str, VersionMetrics] = field(default_factory=dict)
    replicas: set[str] = field(default_factory=set)

    def add(self, report: MetricsReport) -> None:
        for version, metrics in report.versions.items():
            held = self.versions.get(version)
            self.versions[version] = metrics if held is None else add_version_metrics(held, metrics)
        self.replicas.add(report.replica)


class MetricsInbox:
    """Reports for `routes` since the last `drain`, summed."""

    def __init__(self, routes: Iterable[str], *, max_age: float = DEFAULT_MAX_AGE) -> None:
        self._routes = frozenset(routes)
        self._max_age = max_age
        self._pending: dict[str, RouteTraffic] = {}
        self.dropped_stale = 0
        """Reports dropped for arriving more than `max_age` after their interval."""

    def add(self, report: MetricsReport, *, wall_now: float) -> bool:
        """Count `report` (received at `wall_now`, epoch seconds); False when
        it is dropped: stale, or for a route without a canary here."""
        if report.route not in self._routes:
            return False
        if wall_now - report.interval_end > self._max_age:
            self.dropped_stale += 1
            return False
        self._pending.setdefault(report.route, RouteTraffic()).add(report)
        return True

    def drain(self) -> dict[str, RouteTraffic]:
        """Everything counted since the last drain, by route; empties the inbox."""
        pending, self._pending = self._pending, {}
        return pending


__all__ = ["DEFAULT_MAX_AGE", "MetricsInbox", "RouteTraffic", "add_version_metrics"]
