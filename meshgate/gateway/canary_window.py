"""What the canary and the stable version did in the last `evaluation_window`
seconds: requests, errors and a latency histogram per target, in time slots.

The window is cut into `slots` slots of ``length / slots`` seconds, numbered
``floor(now / width)``. A total at `now` sums the slots numbered
``floor(now / width) - slots + 1`` up to the newest, so it covers between
``length - width`` and ``length`` seconds: data older than the window never
counts, and memory stays at most `slots` slots per target, whatever the
request rate. The default ten slots make a 30 s window forget in 3 s steps.

Counts arrive one request at a time (`record`, in one process) or as batches
(`add`, `add_batch`, `add_versions`): the canary controller adds each gateway
replica's per-interval `VersionMetrics` at the `now` it received them, and
because counts and histograms add, the sum over replicas is exactly what one
gateway carrying all the traffic would have counted. Nothing here reads a
clock or does I/O; `now` comes in.

>>> window = CanaryWindow(length=30.0)
>>> window.record("canary", ok=False, latency_ms=12.0, now=1.0)
>>> window.record("canary", ok=True, latency_ms=8.0, now=2.0)
>>> window.counts("canary", now=2.0)
WindowCounts(requests=2, errors=1)
>>> window.counts("canary", now=40.0)
WindowCounts(requests=0, errors=0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, Protocol, get_args

import msgspec

from meshgate.resilience.latency_histogram import (
    HIGHEST_MS,
    LatencyHistogram,
    LatencyHistogramExport,
    bucket_bounds,
    bucket_index,
)
from meshgate.resilience.validation import positive_int, positive_number

Target = Literal["stable", "canary"]
TARGETS: tuple[Target, ...] = get_args(Target)

DEFAULT_SLOTS = 10


class VersionBatch(Protocol):
    """One version's traffic in one interval, as in `meshgate.bus.VersionMetrics`
    (which satisfies this protocol; the window does not import the bus).

    `latency_buckets` maps a bucket's upper bound in ms to its count.
    """

    @property
    def requests(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def latency_sum_ms(self) -> float: ...

    @property
    def latency_buckets(self) -> Mapping[float, int]: ...


class WindowCounts(msgspec.Struct, frozen=True):
    """Requests and failed requests of one target in the window."""

    requests: int
    errors: int


def check_target(target: str) -> Target:
    """`target` if it names one side of a rollout, else `ValueError`.

    >>> check_target("canary")
    'canary'
    """
    if target == "stable":
        return "stable"
    if target == "canary":
        return "canary"
    raise ValueError(f"target={target!r} is not allowed: expected 'stable' or 'canary'")


def histogram_from_buckets(buckets: Mapping[float, int], sum_ms: float) -> LatencyHistogram:
    """A `LatencyHistogram` holding `buckets` (upper bound in ms -> count).

    Each count goes to the histogram bucket just below its upper bound. When
    the sender used `LatencyHistogram`'s own bounds (as the gateway does,
    with `bucket_bounds(i)[1]`), that is the bucket it came from, so the
    round trip keeps every count and quantile; from coarser bounds, values
    are read as their bucket's upper bound, which errs towards slow. `min`
    and `max` become the midpoints of the lowest and highest buckets.

    >>> source = LatencyHistogram()
    >>> for latency in (3.0, 40.0, 41.0):
    ...     source.record(latency)
    >>> sent = {bucket_bounds(i)[1]: n for i, n in source.export().buckets.items()}
    >>> copy = histogram_from_buckets(sent, source.sum)
    >>> copy.count, copy.quantile(0.5) == source.quantile(0.5), copy.sum
    (3, True, 84.0)
    """
    counts: dict[int, int] = {}
    for upper, count in buckets.items():
        if count < 0:
            raise ValueError(f"latency bucket {upper!r} has count {count!r}: expected >= 0")
        if count == 0:
            continue
        if math.isnan(upper):
            raise ValueError("a latency bucket has upper bound NaN: expected a number")
        # The largest float below the upper bound lies in the bucket that the
        # bound closes, top and bottom buckets included; +inf means "slower
        # than every bound", which the top bucket counts.
        index = bucket_index(math.nextafter(upper, -math.inf) if upper < math.inf else HIGHEST_MS)
        counts[index] = counts.get(index, 0) + count
    if not counts:
        return LatencyHistogram()
    return LatencyHistogram.from_export(
        LatencyHistogramExport(
            count=sum(counts.values()),
            sum=sum_ms,
            min=_midpoint(min(counts)),
            max=_midpoint(max(counts)),
            buckets=counts,
        )
    )


def count_slower_than(histogram: LatencyHistogram, threshold_ms: float) -> int:
    """How many recorded latencies exceed `threshold_ms`, judged by their
    bucket's midpoint (the value `quantile` reports), so within
    `RELATIVE_ERROR` / 2 of the threshold a value may land on either side.

    >>> histogram = LatencyHistogram()
    >>> for latency in (100.0, 260.0, 900.0):
    ...     histogram.record(latency)
    >>> count_slower_than(histogram, 250.0)
    2
    """
    if not histogram.count or histogram.max <= threshold_ms:
        return 0
    return sum(
        count
        for index, count in histogram.export().buckets.items()
        if _midpoint(index) > threshold_ms
    )


def _midpoint(index: int) -> float:
    low, high = bucket_bounds(index)
    return (low + high) / 2


class _Slot:
    __slots__ = ("errors", "histogram", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.histogram = LatencyHistogram()


class RollingCounts:
    """One target's requests, errors and latencies over a rolling window.

    >>> counts = RollingCounts(length=10.0, slots=10)
    >>> counts.record(ok=True, latency_ms=5.0, now=0.5)
    >>> counts.add(requests=9, errors=3, histogram=None, now=4.0)
    True
    >>> counts.counts(now=5.0), counts.counts(now=10.6)
    (WindowCounts(requests=10, errors=3), WindowCounts(requests=9, errors=3))
    """

    __slots__ = ("_newest", "_slots", "_width", "length", "slots")

    def __init__(self, length: float, slots: int = DEFAULT_SLOTS) -> None:
        self.length = positive_number("length", length)
        self.slots = positive_int("slots", slots)
        self._width = self.length / self.slots
        self._slots: dict[int, _Slot] = {}
        self._newest: int | None = None

    def record(self, *, ok: bool, latency_ms: float, now: float) -> None:
        """Count one request that ended at `now`."""
        slot = self._slot_at(now)
        if slot is None:
            return
        slot.requests += 1
        if not ok:
            slot.errors += 1
        slot.histogram.record(latency_ms)

    def add(
        self,
        *,
        requests: int,
        errors: int,
        histogram: LatencyHistogram | None,
        now: float,
    ) -> bool:
        """Count a batch of `requests` (of which `errors` failed) at `now`.

        `histogram` holds their latencies, or None when they are not known
        (the batch then counts towards error rates only). Returns False, and
        counts nothing, when `now` lies before the window.
        """
        if not 0 <= errors <= requests:
            raise ValueError(
                f"requests={requests!r}, errors={errors!r} are not allowed: "
                "expected 0 <= errors <= requests"
            )
        slot = self._slot_at(now)
        if slot is None:
            return False
        slot.requests += requests
        slot.errors += errors
        if histogram is not None:
            slot.histogram.merge(histogram)
        return True

    def counts(self, now: float) -> WindowCounts:
        """Requests and errors in the window that ends at `now`."""
        requests = errors = 0
        for slot in self._live(now):
            requests += slot.requests
            errors += slot.errors
        return WindowCounts(requests=requests, errors=errors)

    def latency(self, now: float) -> LatencyHistogram:
        """A new histogram of the latencies in the window that ends at `now`."""
        return LatencyHistogram.merged(slot.histogram for slot in self._live(now))

    def clear(self) -> None:
        """Forget everything (the window starts afresh)."""
        self._slots.clear()
        self._newest = None

    def _key(self, now: float) -> int:
        return math.floor(now / self._width)

    def _slot_at(self, now: float) -> _Slot | None:
        key = self._key(now)
        slot = self._slots.get(key)
        if slot is not None:
            return slot
        newest = self._newest
        if newest is not None and key <= newest - self.slots:
            return None  # older than the window: a late batch counts for nothing
        slot = self._slots[key] = _Slot()
        if newest is None or key > newest:
            self._newest = key
            self._forget_before(key - self.slots + 1)
        return slot

    def _live(self, now: float) -> list[_Slot]:
        key = self._key(now)
        # Reading at `now` moves the window on, so a batch that arrives later
        # with an older `now` is refused like any other stale one.
        if self._newest is None or key > self._newest:
            self._newest = key
            self._forget_before(key - self.slots + 1)
        oldest = key - self.slots + 1
        return [slot for slot_key, slot in self._slots.items() if slot_key >= oldest]

    def _forget_before(self, oldest: int) -> None:
        for key in [key for key in self._slots if key < oldest]:
            del self._slots[key]


class CanaryWindow:
    """`RollingCounts` for both targets of one rollout.

    >>> from meshgate.bus.messages import VersionMetrics
    >>> window = CanaryWindow(length=30.0)
    >>> window.add_versions(
    ...     {"1.0.0": VersionMetrics(requests=90, errors=1),
    ...      "2.0.0": VersionMetrics(requests=10, errors=2, latency_sum_ms=50.0,
    ...                              latency_buckets={5.0: 10})},
    ...     {"1.0.0": "stable", "2.0.0": "canary"}, now=3.0)
    >>> window.counts("stable", 3.0), window.counts("canary", 3.0)
    (WindowCounts(requests=90, errors=1), WindowCounts(requests=10, errors=2))
    """

    __slots__ = ("_targets", "length")

    def __init__(self, length: float, slots: int = DEFAULT_SLOTS) -> None:
        self.length = positive_number("length", length)
        self._targets: dict[Target, RollingCounts] = {
            target: RollingCounts(length, slots) for target in TARGETS
        }

    def target(self, target: str) -> RollingCounts:
        """The counts of `target` ("stable" or "canary")."""
        return self._targets[check_target(target)]

    def record(self, target: str, *, ok: bool, latency_ms: float, now: float) -> None:
        """Count one request to `target` that ended at `now`."""
        self.target(target).record(ok=ok, latency_ms=latency_ms, now=now)

    def add_batch(self, target: str, batch: VersionBatch, now: float) -> bool:
        """Count one replica's interval of `target` (a `VersionMetrics`) at `now`.

        A batch whose histogram counts differ from its `requests` still
        counts its requests and errors; its latencies count as sent.
        """
        histogram = (
            histogram_from_buckets(batch.latency_buckets, batch.latency_sum_ms)
            if batch.latency_buckets
            else None
        )
        return self.target(target).add(
            requests=batch.requests, errors=batch.errors, histogram=histogram, now=now
        )

    def add_versions(
        self,
        versions: Mapping[str, VersionBatch],
        targets: Mapping[str, Target],
        now: float,
    ) -> None:
        """Count a `MetricsReport.versions` mapping; `targets` says which
        version is which target, and versions not in it are ignored (another
        rollout's, or traffic outside any canary)."""
        for version, batch in versions.items():
            target = targets.get(version)
            if target is not None:
                self.add_batch(target, batch, now)

    def counts(self, target: str, now: float) -> WindowCounts:
        """Requests and errors of `target` in the window that ends at `now`."""
        return self.target(target).counts(now)

    def latency(self, target: str, now: float) -> LatencyHistogram:
        """The latencies of `target` in the window that ends at `now`."""
        return self.target(target).latency(now)

    def clear(self, target: str) -> None:
        """Forget what `target` did: after a step, the canary starts afresh."""
        self.target(target).clear()


__all__ = [
    "DEFAULT_SLOTS",
    "TARGETS",
    "CanaryWindow",
    "RollingCounts",
    "Target",
    "VersionBatch",
    "WindowCounts",
    "check_target",
    "count_slower_than",
    "histogram_from_buckets",
]
