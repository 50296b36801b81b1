"""`MetricsCollector`'s rolling window, `MetricsSnapshot`, and `MetricsRegistry`."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshgate.resilience.clock import ManualClock
from meshgate.resilience.latency_histogram import RELATIVE_ERROR, LatencyHistogram
from meshgate.resilience.metrics import MetricsCollector, MetricsRegistry, MetricsSnapshot


def collector_at(start: float = 0.0, **options: float) -> tuple[MetricsCollector, ManualClock]:
    clock = ManualClock(start)
    window = options.pop("window", 60.0)
    return MetricsCollector(window, buckets=int(options.pop("buckets", 12)), clock=clock), clock


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def assert_close_to_exact(reported: float, exact: float) -> None:
    assert abs(reported - exact) <= exact * RELATIVE_ERROR * (1 + 1e-12)


# Snapshot contents


def test_a_collector_without_calls_reports_zero_everywhere() -> None:
    collector, _ = collector_at()
    assert collector.get_snapshot() == MetricsSnapshot()
    assert msgspec.structs.asdict(MetricsSnapshot()) == {
        "total_calls": 0,
        "success_calls": 0,
        "failure_calls": 0,
        "failure_rate": 0.0,
        "average_response_time": 0.0,
        "p50": 0.0,
        "p95": 0.0,
        "p99": 0.0,
        "min": 0.0,
        "max": 0.0,
    }


def test_the_snapshot_counts_calls_and_gives_the_failure_rate_in_percent() -> None:
    collector, _ = collector_at()
    for _ in range(3):
        collector.record_success(45)
    collector.record_failure(500)
    snapshot = collector.get_snapshot()
    assert (snapshot.total_calls, snapshot.success_calls, snapshot.failure_calls) == (4, 3, 1)
    assert snapshot.failure_rate == 25.0
    assert snapshot.average_response_time == (3 * 45 + 500) / 4
    assert (snapshot.min, snapshot.max) == (45.0, 500.0)


def test_percentiles_cover_successes_and_failures_alike() -> None:
    collector, _ = collector_at()
    for latency in range(1, 101):
        record = collector.record_failure if latency % 2 else collector.record_success
        record(float(latency))
    snapshot = collector.get_snapshot()
    assert_close_to_exact(snapshot.p50, 50.0)
    assert_close_to_exact(snapshot.p95, 95.0)
    assert_close_to_exact(snapshot.p99, 99.0)
    assert snapshot.failure_rate == 50.0


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_latency_is_refused_and_counts_nothing(bad: float) -> None:
    collector, _ = collector_at()
    with pytest.raises(ValueError, match="latency_ms="):
        collector.record_success(bad)
    with pytest.raises(ValueError, match="latency_ms="):
        collector.record_failure(bad)
    assert collector.get_snapshot() == MetricsSnapshot()


def test_the_snapshot_is_a_frozen_keyword_only_struct_that_encodes() -> None:
    collector, _ = collector_at()
    collector.record_success(12.5)
    snapshot = collector.get_snapshot()
    with pytest.raises(AttributeError):
        snapshot.total_calls = 7  # type: ignore[misc]
    with pytest.raises(TypeError):
        MetricsSnapshot(1)  # type: ignore[call-arg]
    encoded = msgspec.json.encode(snapshot)
    assert msgspec.json.decode(encoded, type=MetricsSnapshot) == snapshot


def test_a_snapshot_from_a_histogram_refuses_more_failures_than_calls() -> None:
    histogram = LatencyHistogram()
    histogram.record(1.0)
    with pytest.raises(ValueError, match="failure_calls=2"):
        MetricsSnapshot.from_histogram(histogram, failure_calls=2)
    with pytest.raises(ValueError, match="failure_calls=-1"):
        MetricsSnapshot.from_histogram(histogram, failure_calls=-1)


def test_get_histogram_is_a_copy_of_the_window() -> None:
    collector, _ = collector_at()
    collector.record_success(3.0)
    histogram = collector.get_histogram()
    histogram.record(900.0)
    assert (histogram.count, collector.get_snapshot().total_calls) == (2, 1)


def test_reset_forgets_every_call() -> None:
    collector, clock = collector_at()
    collector.record_failure(10.0)
    clock.advance(30.0)
    collector.record_success(20.0)
    collector.reset()
    assert collector.get_snapshot() == MetricsSnapshot()
    collector.record_success(5.0)
    assert collector.get_snapshot().total_calls == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": 0}, "window=0"),
        ({"window": -1.0}, "window=-1.0"),
        ({"window": math.inf}, "window=inf"),
        ({"buckets": 0}, "buckets=0"),
        ({"buckets": 2.5}, "buckets=2.5"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    options: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MetricsCollector(**options)  # type: ignore[arg-type]


# The rolling window


def test_a_call_counts_until_its_slice_leaves_the_window() -> None:
    collector, clock = collector_at()  # 12 slices of 5 s
    collector.record_success(10.0)
    clock.advance(59.999)
    assert collector.get_snapshot().total_calls == 1
    clock.advance(0.001)
    assert collector.get_snapshot().total_calls == 0


def test_a_call_late_in_a_slice_leaves_with_that_slice() -> None:
    collector, clock = collector_at()
    clock.advance(4.999)
    collector.record_failure(10.0)
    clock.advance(55.0)  # 59.999
    assert collector.get_snapshot().failure_calls == 1
    clock.advance(0.001)  # 60.0: a little over 55 s after the call
    assert collector.get_snapshot() == MetricsSnapshot()


def test_slices_leave_one_at_a_time_oldest_first() -> None:
    collector, clock = collector_at()
    collector.record_success(1.0)  # slice 0: leaves at 60
    clock.advance(5.0)
    collector.record_failure(2.0)  # slice 1: leaves at 65
    clock.advance(5.0)
    collector.record_success(3.0)  # slice 2: leaves at 70
    clock.advance(50.0)  # 60
    snapshot = collector.get_snapshot()
    assert (snapshot.total_calls, snapshot.failure_calls, snapshot.min) == (2, 1, 2.0)
    clock.advance(4.999)
    assert collector.get_snapshot().total_calls == 2
    clock.advance(0.001)  # 65
    snapshot = collector.get_snapshot()
    assert (snapshot.total_calls, snapshot.failure_calls, snapshot.min) == (1, 0, 3.0)
    clock.advance(5.0)  # 70
    assert collector.get_snapshot().total_calls == 0


def test_a_slot_reused_after_a_lap_of_the_ring_starts_empty() -> None:
    collector, clock = collector_at(window=10.0, buckets=2)
    collector.record_failure(100.0)  # slice 0, slot 0
    clock.advance(5.0)
    collector.record_success(1.0)  # slice 1, slot 1
    clock.advance(5.0)
    collector.record_success(2.0)  # slice 2, slot 0 again: slice 0 must be gone
    snapshot = collector.get_snapshot()
    assert (snapshot.total_calls, snapshot.failure_calls, snapshot.max) == (2, 0, 2.0)


def test_a_pause_longer_than_the_window_clears_every_slice() -> None:
    collector, clock = collector_at()
    for _ in range(12):
        collector.record_failure(7.0)
        clock.advance(5.0)
    clock.advance(1_000.0)
    collector.record_success(1.0)
    snapshot = collector.get_snapshot()
    assert (snapshot.total_calls, snapshot.failure_calls) == (1, 0)


def test_slices_are_aligned_to_the_clock_not_to_the_first_call() -> None:
    collector, clock = collector_at(start=1_003.0)  # inside the slice [1000, 1005)
    collector.record_success(1.0)
    clock.advance(56.999)  # 1059.999
    assert collector.get_snapshot().total_calls == 1
    clock.advance(0.001)  # 1060: slice [1000, 1005) has left
    assert collector.get_snapshot().total_calls == 0


def test_a_single_slice_window_drops_everything_at_its_end() -> None:
    collector, clock = collector_at(window=1.0, buckets=1)
    collector.record_success(1.0)
    clock.advance(0.999)
    collector.record_success(2.0)
    assert collector.get_snapshot().total_calls == 2
    clock.advance(0.001)
    assert collector.get_snapshot().total_calls == 0


steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.25, 1.0, 2.5, 4.999, 5.0, 7.75, 30.0, 59.9, 60.0, 61.0, 300.0]),
        st.sampled_from(["success", "failure", "check"]),
        st.floats(min_value=0.5, max_value=5_000.0),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(st.sampled_from([0.0, 3.0, 1_000_002.5]), steps)
def test_the_window_holds_exactly_the_calls_of_its_last_twelve_slices(
    start: float, plan: list[tuple[float, str, float]]
) -> None:
    collector, clock = collector_at(start)
    # The model: every call with the number of the 5 s slice it fell in.
    calls: list[tuple[int, bool, float]] = []
    for advance, action, latency in plan:
        clock.advance(advance)
        current = math.floor(clock() / 5.0)
        if action == "success":
            collector.record_success(latency)
            calls.append((current, True, latency))
        elif action == "failure":
            collector.record_failure(latency)
            calls.append((current, False, latency))
        else:
            in_window = [(ok, ms) for number, ok, ms in calls if number > current - 12]
            check_snapshot(collector.get_snapshot(), in_window)


def check_snapshot(snapshot: MetricsSnapshot, calls: list[tuple[bool, float]]) -> None:
    failures = sum(1 for ok, _ in calls if not ok)
    latencies = [ms for _, ms in calls]
    assert (snapshot.total_calls, snapshot.failure_calls) == (len(calls), failures)
    assert snapshot.success_calls == len(calls) - failures
    if not calls:
        assert snapshot == MetricsSnapshot()
        return
    assert snapshot.failure_rate == 100.0 * failures / len(calls)
    assert (snapshot.min, snapshot.max) == (min(latencies), max(latencies))
    assert snapshot.average_response_time == pytest.approx(sum(latencies) / len(latencies))
    for q, reported in [(0.5, snapshot.p50), (0.95, snapshot.p95), (0.99, snapshot.p99)]:
        assert_close_to_exact(reported, exact_quantile(latencies, q))


def test_memory_does_not_grow_with_the_number_of_calls() -> None:
    collector, clock = collector_at()
    latencies = [0.5 * 1.2**k for k in range(50)]

    def record(calls: int) -> None:
        for n in range(calls):
            # A power-of-two step keeps the clock exact; 450k calls span 439 s,
            # so the ring of slices turns over seven times.
            clock.advance(1 / 1024)
            collector.record_success(latencies[n % 50])

    tracemalloc.start()
    try:
        # Two laps of the ring first, traced, so that every slice's counters
        # have been replaced once under tracing and their frees count from here.
        record(150_000)
        before = tracemalloc.get_traced_memory()[0]
        record(300_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    oldest_in_window = (math.floor(clock() / 5.0) - 11) * 5.0
    calls_since = 450_000 - int(oldest_in_window * 1024) + 1
    assert collector.get_snapshot().total_calls == calls_since
    assert grown < 16_384


# The registry


@pytest.fixture
def default_names() -> Iterator[list[str]]:
    """Names a test creates in the process-wide registry, removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        MetricsRegistry.remove(name)


def test_get_or_create_returns_the_same_collector_for_a_name() -> None:
    registry = MetricsRegistry()
    first = registry.get_or_create("payment-service")
    assert registry.get_or_create("payment-service") is first
    assert registry.get_or_create("order-service") is not first


def test_options_apply_when_the_collector_is_created() -> None:
    registry = MetricsRegistry()
    clock = ManualClock()
    collector = registry.get_or_create("payment-service", window=10.0, buckets=5, clock=clock)
    assert (collector.window, collector.buckets) == (10.0, 5)
    assert registry.get_or_create("payment-service", window=99.0) is collector
    assert collector.window == 10.0


def test_get_remove_and_names() -> None:
    registry = MetricsRegistry()
    assert registry.get("payment-service") is None
    collector = registry.get_or_create("payment-service")
    registry.get_or_create("analytics")
    assert registry.get("payment-service") is collector
    assert registry.names() == ["analytics", "payment-service"]
    assert registry.remove("payment-service") is True
    assert registry.remove("payment-service") is False
    assert registry.names() == ["analytics"]
    registry.clear()
    assert registry.names() == []


def test_snapshots_are_by_name() -> None:
    registry = MetricsRegistry()
    clock = ManualClock()
    registry.get_or_create("b", clock=clock).record_failure(3.0)
    registry.get_or_create("a", clock=clock).record_success(1.0)
    snapshots = registry.snapshots()
    assert list(snapshots) == ["a", "b"]
    assert (snapshots["a"].success_calls, snapshots["b"].failure_calls) == (1, 1)


def test_aggregate_merges_histograms_instead_of_averaging_percentiles() -> None:
    registry = MetricsRegistry()
    clock = ManualClock()
    fast = registry.get_or_create("fast", clock=clock)
    slow = registry.get_or_create("slow", clock=clock)
    for _ in range(90):
        fast.record_success(10.0)
    for _ in range(10):
        slow.record_failure(1000.0)
    total = registry.aggregate()
    assert (total.total_calls, total.failure_calls, total.failure_rate) == (100, 10, 10.0)
    assert_close_to_exact(total.p50, 10.0)
    assert_close_to_exact(total.p95, 1000.0)  # averaging each one's p95 would say 505
    assert total.average_response_time == pytest.approx((90 * 10.0 + 10 * 1000.0) / 100)
    assert (total.min, total.max) == (10.0, 1000.0)


def test_aggregate_sees_each_collector_through_its_own_window() -> None:
    registry = MetricsRegistry()
    clock = ManualClock()
    registry.get_or_create("short", window=1.0, buckets=1, clock=clock).record_success(1.0)
    registry.get_or_create("long", window=60.0, clock=clock).record_success(2.0)
    clock.advance(1.0)
    total = registry.aggregate()
    assert (total.total_calls, total.min) == (1, 2.0)


def test_an_empty_registry_aggregates_to_zeros() -> None:
    assert MetricsRegistry().aggregate() == MetricsSnapshot()


def test_calls_on_the_class_use_the_default_registry(default_names: list[str]) -> None:
    default_names.append("test-metrics-payment-service")
    collector = MetricsRegistry.get_or_create("test-metrics-payment-service")
    collector.record_success(45)
    assert MetricsRegistry.default().get("test-metrics-payment-service") is collector
    assert MetricsRegistry.get("test-metrics-payment-service") is collector
    assert "test-metrics-payment-service" in MetricsRegistry.names()
    assert MetricsRegistry.snapshots()["test-metrics-payment-service"].total_calls == 1
    assert MetricsRegistry().get("test-metrics-payment-service") is None


def test_an_instance_registry_leaves_the_default_alone(default_names: list[str]) -> None:
    default_names.append("test-metrics-shared-name")
    in_default = MetricsRegistry.get_or_create("test-metrics-shared-name")
    registry = MetricsRegistry()
    assert registry.get_or_create("test-metrics-shared-name") is not in_default
    registry.remove("test-metrics-shared-name")
    assert MetricsRegistry.get("test-metrics-shared-name") is in_default
