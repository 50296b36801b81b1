"""Metrics: calls recorded into rolling windows, read back as snapshots with
failure rate and latency percentiles (p50, p95, p99), per service and summed;
then calls ageing out of the window.

Run it: ``meshgate demo metrics``.
"""

from __future__ import annotations

import random

import anyio

from meshgate.resilience import (
    ManualClock,
    MetricsCollector,
    MetricsRegistry,
    MetricsSnapshot,
)

HEADER = (
    f"  {'service':<16}{'calls':>6}{'failed':>8}{'fail%':>7}{'avg':>8}"
    f"{'p50':>8}{'p95':>8}{'p99':>8}{'min':>7}{'max':>8}"
)


def row(name: str, snapshot: MetricsSnapshot) -> str:
    return (
        f"  {name:<16}{snapshot.total_calls:>6}{snapshot.failure_calls:>8}"
        f"{snapshot.failure_rate:>6.1f}%{snapshot.average_response_time:>8.1f}"
        f"{snapshot.p50:>8.1f}{snapshot.p95:>8.1f}{snapshot.p99:>8.1f}"
        f"{snapshot.min:>7.1f}{snapshot.max:>8.1f}"
    )


class SimulatedService:
    """Draws latencies (ms) for a service. Knobs: `median_ms` of the usual
    call, `tail_share` of calls that are `tail_factor` times slower, and
    `failure_share` of calls that fail."""

    def __init__(
        self,
        median_ms: float,
        tail_share: float,
        tail_factor: float,
        failure_share: float,
        seed: int,
    ) -> None:
        self.median_ms = median_ms
        self.tail_share = tail_share
        self.tail_factor = tail_factor
        self.failure_share = failure_share
        self.random = random.Random(seed)

    def next_call(self) -> tuple[float, bool]:
        """(latency in ms, whether the call failed)"""
        latency = self.random.lognormvariate(0.0, 0.35) * self.median_ms
        if self.random.random() < self.tail_share:
            latency *= self.tail_factor
        return latency, self.random.random() < self.failure_share


async def per_service() -> None:
    print("1. 1,000 simulated calls per service, recorded with record_success/record_failure:")
    registry = MetricsRegistry()  # a registry of its own; MetricsRegistry.get_or_create is global
    services = {
        "payment-service": SimulatedService(45.0, 0.04, 8.0, 0.03, seed=1),
        "user-service": SimulatedService(12.0, 0.01, 5.0, 0.005, seed=2),
        "search-service": SimulatedService(80.0, 0.10, 4.0, 0.08, seed=3),
    }
    for name, service in services.items():
        collector = registry.get_or_create(name)
        for _ in range(1_000):
            latency, failed = service.next_call()
            if failed:
                collector.record_failure(latency)
            else:
                collector.record_success(latency)
    print("  latencies in ms")
    print(HEADER)
    for name, snapshot in registry.snapshots().items():
        print(row(name, snapshot))
    print(row("all (merged)", registry.aggregate()))
    print("  p99 far above p50 is the slow tail that an average hides.")


async def measured() -> None:
    print()
    print("2. Timing real calls: 20 calls to a service that sleeps 5-25 ms, every 5th fails.")
    collector = MetricsCollector(window=60.0)
    rng = random.Random(4)

    async def lookup(number: int) -> str:
        await anyio.sleep(rng.uniform(0.005, 0.025))
        if number % 5 == 0:
            raise ConnectionError("lookup failed")
        return "ok"

    for number in range(1, 21):
        started = anyio.current_time()
        try:
            await lookup(number)
        except ConnectionError:
            collector.record_failure((anyio.current_time() - started) * 1000)
        else:
            collector.record_success((anyio.current_time() - started) * 1000)
    print(HEADER)
    print(row("lookup", collector.get_snapshot()))


def rolling_window() -> None:
    print()
    print("3. A 60 s window in 12 slices of 5 s (a manual clock stands in for time):")
    clock = ManualClock()
    collector = MetricsCollector(window=60.0, buckets=12, clock=clock)
    for _ in range(10):
        collector.record_failure(900.0)  # a bad minute...
    clock.advance(30.0)
    for _ in range(30):
        collector.record_success(40.0)  # ...then it recovers
    for elapsed in (30.0, 60.0, 90.0):
        snapshot = collector.get_snapshot()
        print(
            f"  t={elapsed:>3.0f}s: {snapshot.total_calls} calls, "
            f"{snapshot.failure_rate:.0f}% failed, p99 {snapshot.p99:.0f} ms"
        )
        clock.advance(30.0)


async def main() -> None:
    await per_service()
    await measured()
    rolling_window()


if __name__ == "__main__":
    anyio.run(main)
