"""The canary's rolling window: slots, ageing, batches from replicas."""

from __future__ import annotations

import math
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.bus.messages import MetricsReport, VersionMetrics
from meshgate.gateway.canary_window import (
    CanaryWindow,
    RollingCounts,
    WindowCounts,
    count_slower_than,
    histogram_from_buckets,
)
from meshgate.resilience.latency_histogram import (
    HIGHEST_MS,
    LatencyHistogram,
    bucket_bounds,
)


def batch_of(latencies: list[float], errors: int = 0) -> VersionMetrics:
    """What a gateway replica publishes for these requests (as gateway_metrics does)."""
    histogram = LatencyHistogram()
    for latency in latencies:
        histogram.record(latency)
    return VersionMetrics(
        requests=histogram.count,
        errors=errors,
        latency_sum_ms=histogram.sum,
        latency_buckets={bucket_bounds(i)[1]: n for i, n in histogram.export().buckets.items()},
    )


# -- ageing ------------------------------------------------------------------------


def test_a_request_counts_until_the_window_has_passed_over_its_slot() -> None:
    # 30 s in 10 slots of 3 s: a request at 1.0 lies in slot [0, 3).
    counts = RollingCounts(length=30.0, slots=10)
    counts.record(ok=False, latency_ms=5.0, now=1.0)
    assert counts.counts(now=29.9) == WindowCounts(requests=1, errors=1)
    # At 30.0 the window is slots [3, 33): the request's slot has gone.
    assert counts.counts(now=30.0) == WindowCounts(requests=0, errors=0)


def test_the_window_covers_between_length_minus_one_slot_and_length() -> None:
    counts = RollingCounts(length=30.0, slots=10)
    counts.record(ok=True, latency_ms=1.0, now=2.99)
    assert counts.counts(now=29.99).requests == 1  # 27.0 s old: still in
    counts.clear()
    counts.record(ok=True, latency_ms=1.0, now=3.0)
    assert counts.counts(now=32.99).requests == 1  # 29.99 s old: still in
    assert counts.counts(now=33.0).requests == 0  # 30 s old: out


def test_memory_stays_bounded_whatever_the_duration() -> None:
    counts = RollingCounts(length=30.0, slots=10)
    for second in range(1000):
        counts.record(ok=True, latency_ms=10.0, now=float(second))
    assert len(counts._slots) <= 10
    assert counts.counts(now=999.0).requests == 28  # seconds 972..999


def test_memory_does_not_grow_with_the_request_rate() -> None:
    counts = RollingCounts(length=30.0, slots=10)
    for i in range(2000):
        counts.record(ok=True, latency_ms=10.0, now=i / 1000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50_000):
            counts.record(ok=i % 7 != 0, latency_ms=float(i % 500), now=2.0 + i / 100_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 10_000


def test_a_batch_older_than_the_window_counts_for_nothing() -> None:
    counts = RollingCounts(length=10.0, slots=10)
    counts.record(ok=True, latency_ms=1.0, now=100.0)
    assert not counts.add(requests=5, errors=5, histogram=None, now=85.0)
    assert counts.counts(now=100.0) == WindowCounts(requests=1, errors=0)


def test_reading_moves_the_window_on_so_late_batches_are_refused() -> None:
    counts = RollingCounts(length=10.0, slots=10)
    assert counts.counts(now=100.0).requests == 0
    assert not counts.add(requests=5, errors=0, histogram=None, now=80.0)


def test_a_late_batch_inside_the_window_lands_in_its_own_slot() -> None:
    counts = RollingCounts(length=10.0, slots=10)
    counts.record(ok=True, latency_ms=1.0, now=9.0)
    assert counts.add(requests=4, errors=1, histogram=None, now=1.5)
    assert counts.counts(now=9.0) == WindowCounts(requests=5, errors=1)
    assert counts.counts(now=11.0) == WindowCounts(requests=1, errors=0)


def test_clear_forgets_everything() -> None:
    counts = RollingCounts(length=10.0)
    counts.record(ok=False, latency_ms=1.0, now=1.0)
    counts.clear()
    assert counts.counts(now=1.0) == WindowCounts(requests=0, errors=0)
    assert counts.latency(now=1.0).count == 0


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="length=0"):
        RollingCounts(length=0.0)
    with pytest.raises(ValueError, match="slots=0"):
        RollingCounts(length=1.0, slots=0)
    with pytest.raises(ValueError, match="requests=1, errors=2"):
        RollingCounts(length=1.0).add(requests=1, errors=2, histogram=None, now=0.0)


@given(
    events=st.lists(st.tuples(st.floats(min_value=0, max_value=100), st.booleans()), max_size=60),
    now=st.floats(min_value=0, max_value=130),
)
def test_totals_match_a_recount_of_the_requests_in_the_covered_slots(
    events: list[tuple[float, bool]], now: float
) -> None:
    counts = RollingCounts(length=20.0, slots=5)
    seen: list[tuple[float, bool]] = []
    for at, ok in sorted(events):
        counts.record(ok=ok, latency_ms=1.0, now=at)
        seen.append((at, ok))
    now = max([now, *(at for at, _ in seen)])
    oldest_slot = math.floor(now / 4.0) - 4
    kept = [ok for at, ok in seen if math.floor(at / 4.0) >= oldest_slot]
    assert counts.counts(now) == WindowCounts(
        requests=len(kept), errors=sum(1 for ok in kept if not ok)
    )


# -- latencies ------------------------------------------------------------------


def test_latency_merges_the_slots_exactly() -> None:
    counts = RollingCounts(length=30.0)
    direct = LatencyHistogram()
    for i in range(300):
        latency = float(i % 97) + 0.5
        counts.record(ok=True, latency_ms=latency, now=i / 10)
        direct.record(latency)
    merged = counts.latency(now=29.9)
    assert merged.count == 300
    assert merged.quantiles([0.5, 0.99, 1.0]) == direct.quantiles([0.5, 0.99, 1.0])


def test_a_batch_from_a_replica_round_trips_through_the_bus_buckets() -> None:
    latencies = [0.0, 0.3, 4.0, 12.5, 12.6, 250.0, 3000.0, 1e9]
    source = LatencyHistogram()
    for latency in latencies:
        source.record(latency)
    copy = histogram_from_buckets(batch_of(latencies).latency_buckets, source.sum)
    assert copy.export().buckets == source.export().buckets
    assert copy.count == source.count
    assert copy.sum == source.sum
    # The middle quantiles are bucket midpoints either way: the same values.
    assert copy.quantiles([0.25, 0.5, 0.75]) == source.quantiles([0.25, 0.5, 0.75])


def test_coarse_buckets_read_as_their_upper_bound() -> None:
    copy = histogram_from_buckets({10.0: 3, 100.0: 1, math.inf: 1}, sum_ms=0.0)
    assert copy.count == 5
    assert 9.9 < copy.quantile(0.5) < 10.0
    assert copy.quantile(1.0) > HIGHEST_MS / 2  # "+Inf" went to the top bucket


def test_bucket_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="count -1"):
        histogram_from_buckets({10.0: -1}, sum_ms=0.0)
    with pytest.raises(ValueError, match="NaN"):
        histogram_from_buckets({math.nan: 1}, sum_ms=0.0)
    assert histogram_from_buckets({10.0: 0}, sum_ms=0.0).count == 0


def test_count_slower_than_uses_the_bucket_midpoints() -> None:
    histogram = LatencyHistogram()
    for latency in (10.0, 249.0, 251.0, 300.0, 9000.0):
        histogram.record(latency)
    assert count_slower_than(histogram, 250.0) == 3
    assert count_slower_than(histogram, 9000.0 * 1.01) == 0
    assert count_slower_than(LatencyHistogram(), 1.0) == 0


# -- both targets, and replicas' reports -----------------------------------------


def test_targets_are_counted_apart() -> None:
    window = CanaryWindow(length=30.0)
    window.record("stable", ok=True, latency_ms=1.0, now=0.0)
    window.record("canary", ok=False, latency_ms=1.0, now=0.0)
    assert window.counts("stable", 0.0) == WindowCounts(requests=1, errors=0)
    assert window.counts("canary", 0.0) == WindowCounts(requests=1, errors=1)
    window.clear("canary")
    assert window.counts("canary", 0.0).requests == 0
    assert window.counts("stable", 0.0).requests == 1


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="target='blue'"):
        CanaryWindow(length=30.0).record("blue", ok=True, latency_ms=1.0, now=0.0)


def test_reports_from_several_replicas_sum_to_what_one_gateway_would_count() -> None:
    replicas = {
        "gw-1": ([12.0, 14.0, 900.0], [20.0] * 30),
        "gw-2": ([11.0, 13.0], [21.0, 22.0, 23.0]),
    }
    window = CanaryWindow(length=30.0)
    one_gateway = CanaryWindow(length=30.0)
    for replica, (canary_latencies, stable_latencies) in replicas.items():
        report = MetricsReport(
            route="/api/orders",
            replica=replica,
            interval_start=0.0,
            interval_end=5.0,
            versions={
                "2.0.0": batch_of(canary_latencies, errors=1),
                "1.0.0": batch_of(stable_latencies),
                "0.9.0": batch_of([1.0]),  # another rollout's version: ignored
            },
        )
        window.add_versions(report.versions, {"1.0.0": "stable", "2.0.0": "canary"}, now=5.0)
        for i, latency in enumerate(canary_latencies):
            one_gateway.record("canary", ok=i != 0, latency_ms=latency, now=5.0)
        for latency in stable_latencies:
            one_gateway.record("stable", ok=True, latency_ms=latency, now=5.0)
    for target in ("stable", "canary"):
        assert window.counts(target, 5.0) == one_gateway.counts(target, 5.0)
        assert (
            window.latency(target, 5.0).export().buckets
            == one_gateway.latency(target, 5.0).export().buckets
        )
    assert window.counts("canary", 5.0) == WindowCounts(requests=5, errors=2)


def test_a_batch_without_latencies_still_counts_its_errors() -> None:
    window = CanaryWindow(length=30.0)
    assert window.add_batch("canary", VersionMetrics(requests=10, errors=3), now=1.0)
    assert window.counts("canary", 1.0) == WindowCounts(requests=10, errors=3)
    assert window.latency("canary", 1.0).count == 0
