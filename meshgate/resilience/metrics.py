"""Call metrics over a rolling time window: counts, failure rate, latency
percentiles.

A `MetricsCollector` keeps a ring of `buckets` time slices, each
`window / buckets` seconds long and each with its own `LatencyHistogram` and
failure count. Slices are aligned to the clock (slice `n` covers
[n * width, (n + 1) * width)), and a call leaves the window as a whole slice
at a time: a call recorded during slice `n` counts until the clock reaches
`(n + buckets) * width`. So the window a snapshot sees is between
`window - width` and `window` seconds long, as in resilience4j's time-based
sliding window. Memory is `buckets` histograms (about 16 KB each), however
many calls are recorded.

Recording is the gateway's hot path: one clock read, one comparison, and the
histogram's `record`; expired slices are cleared lazily by the first call (or
snapshot) that finds the current slice over. Snapshots merge the slices'
histograms, so their percentiles are those of every call in the window, not
an average of per-slice percentiles.

`MetricsRegistry` names collectors. Called on the class, its methods use the
process-wide default registry, as the reference's
`MetricsRegistry.getOrCreate('payment-service')` does; an instance is a
registry of its own (one per gateway, or per test).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Concatenate, Generic, ParamSpec, TypeVar

import msgspec

from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.latency_histogram import LatencyHistogram
from meshgate.resilience.validation import positive_int, positive_number


class MetricsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Calls in a window: counts, `failure_rate` in percent (0..100), and
    latencies in ms (`average_response_time`, `p50`, `p95`, `p99`, `min`,
    `max`). Every field is 0 when there were no calls.

    Percentiles are nearest-rank, within 1/128 of the exact value (see
    `meshgate.resilience.latency_histogram`); counts, `min` and `max` are exact.

    >>> histogram = LatencyHistogram()
    >>> for latency in (10.0, 20.0, 30.0, 40.0):
    ...     histogram.record(latency)
    >>> snapshot = MetricsSnapshot.from_histogram(histogram, failure_calls=1)
    >>> snapshot.total_calls, snapshot.failure_rate, snapshot.average_response_time
    (4, 25.0, 25.0)
    """

    total_calls: int = 0
    success_calls: int = 0
    failure_calls: int = 0
    failure_rate: float = 0.0
    average_response_time: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    min: float = 0.0
    max: float = 0.0

    @classmethod
    def from_histogram(
        cls, histogram: LatencyHistogram, *, failure_calls: int = 0
    ) -> MetricsSnapshot:
        """The snapshot of the calls in `histogram`, `failure_calls` of which failed.

        This is how the canary controller turns the histograms that every
        replica published, merged, into one snapshot.
        """
        total = histogram.count
        if not 0 <= failure_calls <= total:
            raise ValueError(
                f"failure_calls={failure_calls!r} is not allowed: "
                f"expected 0 to {total}, the calls in the histogram"
            )
        if not total:
            return cls()
        p50, p95, p99 = histogram.quantiles((0.50, 0.95, 0.99))
        return cls(
            total_calls=total,
            success_calls=total - failure_calls,
            failure_calls=failure_calls,
            failure_rate=100.0 * failure_calls / total,
            average_response_time=histogram.mean,
            p50=p50,
            p95=p95,
            p99=p99,
            min=histogram.min,
            max=histogram.max,
        )


class MetricsCollector:
    """Successes, failures and latencies (ms) of calls over the last `window` seconds.

    `buckets` is the number of time slices the window is cut into: more
    slices make the window's edge sharper and cost one histogram each.
    `clock` is read on every record; pass a `ManualClock` in tests.
    Not thread-safe: record from one thread (or event loop).

    >>> from meshgate.resilience.clock import ManualClock
    >>> clock = ManualClock()
    >>> collector = MetricsCollector(window=60.0, clock=clock)
    >>> collector.record_success(45)
    >>> collector.record_failure(500)
    >>> collector.get_snapshot().failure_rate
    50.0
    >>> clock.advance(60.0)  # both calls' slice has left the window
    >>> collector.get_snapshot().total_calls
    0
    """

    __slots__ = (
        "_clock",
        "_epoch",
        "_failures",
        "_histograms",
        "_record",
        "_slice_end",
        "_slot",
        "_width",
        "buckets",
        "window",
    )

    def __init__(
        self, window: float = 60.0, *, buckets: int = 12, clock: Clock = monotonic
    ) -> None:
        self.window = positive_number("window", window)
        self.buckets = positive_int("buckets", buckets)
        self._width = self.window / self.buckets
        self._clock = clock
        self._histograms = [LatencyHistogram() for _ in range(self.buckets)]
        self._failures = [0] * self.buckets
        # `_epoch` is the absolute number of the current slice (now // width);
        # its histogram lives at `_slot` in the ring.
        self._epoch = math.floor(clock() / self._width)
        self._slot = self._epoch % self.buckets
        self._slice_end = (self._epoch + 1) * self._width
        self._record = self._histograms[self._slot].record

    def record_success(self, latency_ms: float) -> None:
        """Count a call that succeeded after `latency_ms` milliseconds.

        Raises `ValueError` (and counts nothing) for NaN or infinite latencies.
        """
        now = self._clock()
        if now >= self._slice_end:
            self._advance(now)
        self._record(latency_ms)

    def record_failure(self, latency_ms: float) -> None:
        """Count a call that failed after `latency_ms` milliseconds."""
        now = self._clock()
        if now >= self._slice_end:
            self._advance(now)
        # Record first: a latency it refuses must not leave a failure behind.
        self._record(latency_ms)
        self._failures[self._slot] += 1

    def get_snapshot(self) -> MetricsSnapshot:
        """The calls in the window now."""
        histogram, failures = self._window()
        return MetricsSnapshot.from_histogram(histogram, failure_calls=failures)

    def get_histogram(self) -> LatencyHistogram:
        """The latencies of the calls in the window now, merged into a new histogram."""
        return self._window()[0]

    def reset(self) -> None:
        """Forget every call."""
        for histogram in self._histograms:
            histogram.reset()
        self._failures = [0] * self.buckets

    def __repr__(self) -> str:
        return f"MetricsCollector(window={self.window}, buckets={self.buckets})"

    def _window(self) -> tuple[LatencyHistogram, int]:
        now = self._clock()
        if now >= self._slice_end:
            self._advance(now)
        return LatencyHistogram.merged(self._histograms), sum(self._failures)

    def _advance(self, now: float) -> None:
        # At least one slice on: `now / width` can round down onto the slice
        # that `now >= _slice_end` has just said is over.
        epoch = max(math.floor(now / self._width), self._epoch + 1)
        # Clear every slice passed over, the new current one included; after a
        # gap of a whole window or more that is all of them.
        for step in range(1, min(epoch - self._epoch, self.buckets) + 1):
            slot = (self._epoch + step) % self.buckets
            self._histograms[slot].reset()
            self._failures[slot] = 0
        self._epoch = epoch
        self._slot = epoch % self.buckets
        self._slice_end = (epoch + 1) * self._width
        self._record = self._histograms[self._slot].record


_P = ParamSpec("_P")
_R = TypeVar("_R")


class _OnDefaultWhenCalledOnClass(Generic[_P, _R]):
    """Makes `MetricsRegistry.name(...)` mean `MetricsRegistry.default().name(...)`,
    while `registry.name(...)` stays an ordinary method call."""

    def __init__(self, method: Callable[Concatenate[MetricsRegistry, _P], _R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    def __get__(
        self, registry: MetricsRegistry | None, owner: type[MetricsRegistry]
    ) -> Callable[_P, _R]:
        return functools.partial(self._method, owner.default() if registry is None else registry)


class MetricsRegistry:
    """Named `MetricsCollector`s, and their snapshots side by side or summed.

    Every method can be called on the class, for the process-wide default
    registry, or on an instance, for a registry of its own.

    >>> collector = MetricsRegistry.get_or_create("payment-service")
    >>> collector.record_success(45)
    >>> MetricsRegistry.get("payment-service") is collector
    True
    >>> MetricsRegistry.snapshots()["payment-service"].total_calls
    1
    >>> MetricsRegistry.remove("payment-service")
    True
    """

    def __init__(self) -> None:
        self._collectors: dict[str, MetricsCollector] = {}

    @classmethod
    def default(cls) -> MetricsRegistry:
        """The process-wide registry that calls on the class use."""
        return _DEFAULT_REGISTRY

    @_OnDefaultWhenCalledOnClass
    def get_or_create(
        self,
        name: str,
        *,
        window: float = 60.0,
        buckets: int = 12,
        clock: Clock = monotonic,
    ) -> MetricsCollector:
        """The collector called `name`, created with these options if there is none.

        As in the reference (and resilience4j), the options apply only when
        the collector is created; an existing one is returned as it is.
        """
        collector = self._collectors.get(name)
        if collector is None:
            collector = MetricsCollector(window, buckets=buckets, clock=clock)
            self._collectors[name] = collector
        return collector

    @_OnDefaultWhenCalledOnClass
    def get(self, name: str) -> MetricsCollector | None:
        """The collector called `name`, or None."""
        return self._collectors.get(name)

    @_OnDefaultWhenCalledOnClass
    def remove(self, name: str) -> bool:
        """Forget the collector called `name`; whether there was one."""
        return self._collectors.pop(name, None) is not None

    @_OnDefaultWhenCalledOnClass
    def clear(self) -> None:
        """Forget every collector."""
        self._collectors.clear()

    @_OnDefaultWhenCalledOnClass
    def names(self) -> list[str]:
        """The names of the collectors, sorted."""
        return sorted(self._collectors)

    @_OnDefaultWhenCalledOnClass
    def snapshots(self) -> dict[str, MetricsSnapshot]:
        """Each collector's snapshot, by name (sorted)."""
        return {name: self._collectors[name].get_snapshot() for name in sorted(self._collectors)}

    @_OnDefaultWhenCalledOnClass
    def aggregate(self) -> MetricsSnapshot:
        """One snapshot of the calls of every collector together.

        The collectors' histograms are merged, so the percentiles are those of
        all the calls, not an average of each collector's percentiles.
        """
        windows = [collector._window() for collector in list(self._collectors.values())]
        return MetricsSnapshot.from_histogram(
            LatencyHistogram.merged(histogram for histogram, _ in windows),
            failure_calls=sum(failures for _, failures in windows),
        )


_DEFAULT_REGISTRY = MetricsRegistry()
