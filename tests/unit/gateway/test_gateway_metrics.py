from meshgate.gateway.gateway_metrics import GatewayMetrics
from meshgate.resilience.clock import ManualClock


def test_snapshot_holds_routes_versions_and_the_aggregate() -> None:
    metrics = GatewayMetrics(window=60.0, clock=ManualClock())
    metrics.record("users", "v1", 200, True, 10.0)
    metrics.record("users", "v1", 200, True, 30.0)
    metrics.record("users", "v2", 503, False, 20.0)
    metrics.record("orders", "default", 200, True, 5.0)
    snapshot = metrics.get_snapshot()
    assert snapshot.aggregated.total_calls == 4
    assert snapshot.aggregated.failure_calls == 1
    assert snapshot.routes["users"].total.total_calls == 3
    assert snapshot.routes["users"].versions["v1"].failure_rate == 0.0
    assert snapshot.routes["users"].versions["v2"].failure_rate == 100.0


def test_calls_leave_the_window() -> None:
    clock = ManualClock()
    metrics = GatewayMetrics(window=10.0, clock=clock)
    metrics.record("users", "v1", 200, True, 10.0)
    clock.advance(10.0)
    assert metrics.get_snapshot().aggregated.total_calls == 0


def test_take_interval_returns_each_versions_batch_and_starts_afresh() -> None:
    metrics = GatewayMetrics(clock=ManualClock())
    metrics.record("orders", "1.0.0", 200, True, 10.0)
    metrics.record("orders", "2.0.0", 500, False, 40.0)
    metrics.record("orders", "2.0.0", 200, True, 40.0)
    batch = metrics.take_interval("orders")
    assert batch["1.0.0"].requests == 1
    assert batch["2.0.0"].requests == 2
    assert batch["2.0.0"].errors == 1
    assert sum(batch["2.0.0"].latency_buckets.values()) == 2
    assert batch["2.0.0"].latency_sum_ms == 80.0
    again = metrics.take_interval("orders")
    assert again["2.0.0"].requests == 0
    assert metrics.take_interval("nowhere") == {}


def test_status_counts_only_grow() -> None:
    clock = ManualClock()
    metrics = GatewayMetrics(window=1.0, clock=clock)
    metrics.record("users", "v1", 200, True, 1.0)
    metrics.record("users", "v1", 200, True, 1.0)
    clock.advance(5.0)
    metrics.record("users", "v1", 404, True, 1.0)
    assert sorted(metrics.status_counts()) == [("users", 200, 2), ("users", 404, 1)]


def test_refusals_count_as_failures_but_stay_out_of_the_canary_batches() -> None:
    metrics = GatewayMetrics(clock=ManualClock())
    metrics.record("pay", "2.0.0", 200, True, 10.0)
    metrics.record("pay", "2.0.0", 503, False, 0.1, reached_upstream=False)
    assert metrics.get_snapshot().routes["pay"].total.failure_rate == 50.0
    batch = metrics.take_interval("pay")["2.0.0"]
    assert (batch.requests, batch.errors) == (1, 0)
