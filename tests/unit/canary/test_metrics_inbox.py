"""Summing the replicas' metrics reports between two controller ticks."""

from __future__ import annotations

from canary_node.metrics_inbox import MetricsInbox, add_version_metrics
from meshgate.bus.messages import MetricsReport, VersionMetrics

NOW = 1_700_000_000.0


def report(
    replica: str, versions: dict[str, VersionMetrics], *, route: str = "orders", end: float = NOW
) -> MetricsReport:
    return MetricsReport(
        route=route, replica=replica, interval_start=end - 1, interval_end=end, versions=versions
    )


def test_reports_of_all_replicas_add_up_per_version() -> None:
    inbox = MetricsInbox(["orders"])
    inbox.add(
        report(
            "gw-1",
            {
                "1.0.0": VersionMetrics(requests=90, errors=1),
                "2.0.0": VersionMetrics(requests=10, errors=2),
            },
        ),
        wall_now=NOW,
    )
    inbox.add(report("gw-2", {"2.0.0": VersionMetrics(requests=5, errors=0)}), wall_now=NOW)
    inbox.add(report("gw-1", {"2.0.0": VersionMetrics(requests=1, errors=1)}), wall_now=NOW)
    traffic = inbox.drain()["orders"]
    assert traffic.versions["1.0.0"] == VersionMetrics(requests=90, errors=1)
    assert traffic.versions["2.0.0"].requests == 16
    assert traffic.versions["2.0.0"].errors == 3
    assert traffic.replicas == {"gw-1", "gw-2"}


def test_latency_histograms_add_bucket_by_bucket() -> None:
    total = add_version_metrics(
        VersionMetrics(requests=3, latency_sum_ms=40.0, latency_buckets={10.0: 2, 25.0: 1}),
        VersionMetrics(requests=2, latency_sum_ms=90.0, latency_buckets={25.0: 1, 100.0: 1}),
    )
    assert total.latency_buckets == {10.0: 2, 25.0: 2, 100.0: 1}
    assert total.latency_sum_ms == 130.0
    assert total.requests == 5


def test_the_sum_equals_what_one_replica_carrying_all_traffic_would_report() -> None:
    parts = [
        VersionMetrics(requests=n, errors=n // 3, latency_sum_ms=n * 5.0, latency_buckets={10.0: n})
        for n in (4, 7, 9)
    ]
    inbox = MetricsInbox(["orders"])
    for index, part in enumerate(parts):
        inbox.add(report(f"gw-{index}", {"2.0.0": part}), wall_now=NOW)
    assert inbox.drain()["orders"].versions["2.0.0"] == VersionMetrics(
        requests=20, errors=1 + 2 + 3, latency_sum_ms=100.0, latency_buckets={10.0: 20}
    )


def test_drain_empties_the_inbox() -> None:
    inbox = MetricsInbox(["orders"])
    inbox.add(report("gw-1", {"2.0.0": VersionMetrics(requests=1)}), wall_now=NOW)
    assert inbox.drain()
    assert inbox.drain() == {}


def test_reports_for_routes_without_a_canary_are_dropped() -> None:
    inbox = MetricsInbox(["orders"])
    assert not inbox.add(
        report("gw-1", {"default": VersionMetrics(requests=1)}, route="users"), wall_now=NOW
    )
    assert inbox.drain() == {}


def test_a_report_arriving_long_after_its_interval_is_dropped_as_stale() -> None:
    inbox = MetricsInbox(["orders"], max_age=10.0)
    late = report("gw-1", {"2.0.0": VersionMetrics(requests=50, errors=50)}, end=NOW - 10.5)
    on_time = report("gw-2", {"2.0.0": VersionMetrics(requests=5)}, end=NOW - 9.5)
    assert not inbox.add(late, wall_now=NOW)
    assert inbox.add(on_time, wall_now=NOW)
    assert inbox.drain()["orders"].versions["2.0.0"].requests == 5
    assert inbox.dropped_stale == 1


def test_summing_does_not_change_the_reports_it_was_given() -> None:
    first = VersionMetrics(requests=1, latency_buckets={10.0: 1})
    inbox = MetricsInbox(["orders"])
    inbox.add(report("gw-1", {"2.0.0": first}), wall_now=NOW)
    inbox.add(
        report("gw-2", {"2.0.0": VersionMetrics(requests=1, latency_buckets={10.0: 1})}),
        wall_now=NOW,
    )
    inbox.drain()
    assert first.latency_buckets == {10.0: 1}
