"""`LatencyHistogram`: a fixed-size, mergeable, log-linear latency histogram.

The layout is HDR-like. Each power of two of milliseconds, from `LOWEST_MS`
(2**-10 ms, about 1 µs) up to `HIGHEST_MS` (2**22 ms, about 70 minutes), is
cut into `SUB_BUCKETS` (64) equal buckets, plus one bottom bucket for
[0, `LOWEST_MS`). That makes `BUCKET_COUNT` (2049) counters, whatever the
number of values recorded.

Error bound: a bucket is at most 1/64 of its lower edge wide, and a quantile
is reported as its bucket's midpoint, so for a true quantile `x` in
[`LOWEST_MS`, `HIGHEST_MS`) the reported value is within
`RELATIVE_ERROR` = 1/128 (0.78%) of `x`. Below `LOWEST_MS` the error is at
most `LOWEST_MS / 2` (under half a microsecond). Values outside the range,
negative ones included, are counted in the edge buckets; `count`, `min` and
`max` stay exact for every value, and `sum` is their float sum. Quantiles
are nearest-rank: `quantile(q)` is the recorded value at rank
`ceil(q * count)`, so `q=0` is `min` and `q=1` is `max`, both exact.

Merging adds counters, so merged histograms (one per gateway replica, summed
by the canary controller) give exactly the counts, `min`, `max` and
quantiles that one histogram fed all the values would give. Only `sum`, a
float, may differ from that one histogram's in its last bits (relative
error about 1e-16 per addition); `LatencyHistogram.merged` at least makes it
independent of the order of the histograms. The export
(`LatencyHistogramExport`) lists only the non-empty buckets and survives
msgspec JSON or msgpack encoding bit for bit; the layout is part of its
schema version `v`, so a histogram cut differently cannot be merged by
mistake.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from math import frexp, ldexp
from operator import add

import msgspec

from meshgate.resilience.validation import fraction

SUB_BUCKETS = 64
"""Buckets per power of two; 64 gives the 1/128 bound below."""

LOWEST_MS = 2.0**-10
"""Smallest value with a bounded relative error (about 1 µs)."""

HIGHEST_MS = 2.0**22
"""Values from here on (about 70 minutes) share the top bucket."""

RELATIVE_ERROR = 1 / (2 * SUB_BUCKETS)
"""Largest relative error of a quantile in [LOWEST_MS, HIGHEST_MS): 0.78125%."""

SCHEMA_VERSION = 1
"""`v` of an export; it changes whenever the bucket layout does."""

# frexp(x) = (m, e) with x = m * 2**e and 0.5 <= m < 1, so int(m * 128) - 64
# is the linear bucket within the power of two and e picks the power.
_MANTISSA_SCALE = 2 * SUB_BUCKETS
_LOWEST_EXPONENT = frexp(LOWEST_MS)[1]
_HIGHEST_EXPONENT = frexp(HIGHEST_MS)[1] - 1
_MANTISSA_BITS = _MANTISSA_SCALE.bit_length() - 1
_INDEX_OFFSET = 1 - SUB_BUCKETS - _LOWEST_EXPONENT * SUB_BUCKETS

BUCKET_COUNT = 1 + (_HIGHEST_EXPONENT - _LOWEST_EXPONENT + 1) * SUB_BUCKETS
"""Counters per histogram: the bottom bucket plus SUB_BUCKETS per power of two."""

_TOP = BUCKET_COUNT - 1


def bucket_index(latency_ms: float) -> int:
    """The bucket that counts `latency_ms`; out-of-range values get an edge bucket.

    >>> bucket_index(0.0), bucket_index(LOWEST_MS), bucket_index(1e12) == BUCKET_COUNT - 1
    (0, 1, True)
    """
    if LOWEST_MS <= latency_ms < HIGHEST_MS:
        mantissa, exponent = frexp(latency_ms)
        return exponent * SUB_BUCKETS + int(mantissa * _MANTISSA_SCALE) + _INDEX_OFFSET
    return _edge_index(latency_ms)


def bucket_bounds(index: int) -> tuple[float, float]:
    """The values [low, high) that bucket `index` counts, ignoring the clamping
    at both ends.

    >>> bucket_bounds(0), bucket_bounds(1)
    ((0.0, 0.0009765625), (0.0009765625, 0.0009918212890625))
    """
    if not 0 <= index < BUCKET_COUNT:
        raise ValueError(
            f"index={index!r} is not allowed: expected a bucket index from 0 to {_TOP}"
        )
    if index == 0:
        return 0.0, LOWEST_MS
    power, sub_bucket = divmod(index - 1, SUB_BUCKETS)
    # Bucket j of the power with frexp exponent e spans (64 + j) / 128 * 2**e
    # to one 128th of 2**e further; ldexp keeps both edges exact.
    exponent = _LOWEST_EXPONENT + power
    step = exponent - _MANTISSA_BITS
    return (
        ldexp(SUB_BUCKETS + sub_bucket, step),
        ldexp(SUB_BUCKETS + sub_bucket + 1, step),
    )


def _edge_index(latency_ms: float) -> int:
    # The slow path of `bucket_index`, kept apart so the common case is one
    # chained comparison; NaN fails that comparison and ends up here too.
    if not math.isfinite(latency_ms):
        raise ValueError(f"latency_ms={latency_ms!r} is not allowed: expected a finite number")
    return 0 if latency_ms < LOWEST_MS else _TOP


class LatencyHistogramExport(msgspec.Struct, frozen=True, kw_only=True):
    """A histogram as data: what a gateway replica publishes each interval.

    `buckets` maps bucket index to count and holds only non-empty buckets.
    `min` and `max` are 0.0 when `count` is 0 (JSON has no infinity).
    """

    v: int = SCHEMA_VERSION
    count: int
    sum: float
    min: float
    max: float
    buckets: dict[int, int]


class LatencyHistogram:
    """Latencies in milliseconds, counted in `BUCKET_COUNT` log-linear buckets.

    Quantiles are within `RELATIVE_ERROR` (1/128) of the exact nearest-rank
    quantile; see the module docstring for the exact terms. Not thread-safe:
    record from one thread (or event loop), as the gateway does.

    >>> histogram = LatencyHistogram()
    >>> for latency in range(1, 101):
    ...     histogram.record(latency)
    >>> histogram.count, histogram.min, histogram.max, histogram.mean
    (100, 1.0, 100.0, 50.5)
    >>> abs(histogram.quantile(0.95) - 95) <= 95 * RELATIVE_ERROR
    True
    >>> other = LatencyHistogram.from_export(histogram.export())
    >>> other.merge(histogram)
    >>> other.count
    200
    """

    __slots__ = ("_count", "_counts", "_max", "_min", "_sum")

    def __init__(self) -> None:
        self._counts = [0] * BUCKET_COUNT
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def record(self, latency_ms: float) -> None:
        """Count one latency. Raises `ValueError` for NaN and infinities, which
        would poison `sum`; any finite value is accepted (see the clamping above).
        """
        # `bucket_index` inlined: this is the hot path of every proxied call,
        # and a function call here costs about a third of the whole record.
        if LOWEST_MS <= latency_ms < HIGHEST_MS:
            mantissa, exponent = frexp(latency_ms)
            index = exponent * SUB_BUCKETS + int(mantissa * _MANTISSA_SCALE) + _INDEX_OFFSET
        else:
            index = _edge_index(latency_ms)
        self._counts[index] += 1
        self._count += 1
        self._sum += latency_ms
        if latency_ms < self._min:
            self._min = latency_ms
        if latency_ms > self._max:
            self._max = latency_ms

    @property
    def count(self) -> int:
        """Values recorded."""
        return self._count

    @property
    def sum(self) -> float:
        """Sum of the values recorded, in ms."""
        return float(self._sum)

    @property
    def min(self) -> float:
        """Smallest value recorded (exact), or 0.0 when empty."""
        return float(self._min) if self._count else 0.0

    @property
    def max(self) -> float:
        """Largest value recorded (exact), or 0.0 when empty."""
        return float(self._max) if self._count else 0.0

    @property
    def mean(self) -> float:
        """Average of the values recorded, or 0.0 when empty."""
        return self._sum / self._count if self._count else 0.0

    def quantile(self, q: float) -> float:
        """The nearest-rank `q`-quantile (0 <= q <= 1), or 0.0 when empty.

        >>> histogram = LatencyHistogram()
        >>> histogram.record(3.0)
        >>> histogram.quantile(0.5)
        3.0
        """
        return self.quantiles([q])[0]

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """`quantile(q)` for each of `qs`, in one pass over the buckets.

        >>> histogram = LatencyHistogram()
        >>> for latency in (1.0, 2.0, 4.0, 8.0):
        ...     histogram.record(latency)
        >>> histogram.quantiles([0.0, 0.5, 1.0])  # the median is its bucket's midpoint
        [1.0, 2.015625, 8.0]
        """
        ranks = [self._rank(fraction("q", q)) for q in qs]
        results = [0.0] * len(ranks)
        if not self._count:
            return results
        pending = sorted(range(len(ranks)), key=ranks.__getitem__)
        next_pending = 0
        cumulative = 0
        for index, count in enumerate(self._counts):
            if not count:
                continue
            cumulative += count
            while next_pending < len(pending) and ranks[pending[next_pending]] <= cumulative:
                position = pending[next_pending]
                results[position] = self._value_at(index, ranks[position])
                next_pending += 1
            if next_pending == len(pending):
                break
        return results

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value of `other` to this histogram, exactly as if recorded here.

        >>> a, b = LatencyHistogram(), LatencyHistogram()
        >>> a.record(1.0); b.record(9.0)
        >>> a.merge(b)
        >>> a.count, a.min, a.max
        (2, 1.0, 9.0)
        """
        if not other._count:
            return
        self._counts = list(map(add, self._counts, other._counts))
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        """A new histogram holding the values of all `histograms`, which stay as they are.

        Unlike a chain of `merge` calls, the result does not depend on the
        order of `histograms` even in the last bit of `sum` (it is the
        correctly rounded total, `math.fsum`), so every canary controller
        that sums the same replicas' histograms gets the same answer.

        >>> a, b = LatencyHistogram(), LatencyHistogram()
        >>> a.record(0.1); b.record(0.2); b.record(0.3)
        >>> LatencyHistogram.merged([a, b]).sum == LatencyHistogram.merged([b, a]).sum
        True
        """
        filled = [histogram for histogram in histograms if histogram._count]
        result = cls()
        if filled:
            # One pass over all of them: about twice as fast as pairwise merges.
            columns = zip(*[histogram._counts for histogram in filled], strict=True)
            result._counts = list(map(sum, columns))
            result._count = sum(histogram._count for histogram in filled)
            result._sum = math.fsum(histogram._sum for histogram in filled)
            result._min = min(histogram._min for histogram in filled)
            result._max = max(histogram._max for histogram in filled)
        return result

    def copy(self) -> LatencyHistogram:
        """An independent histogram with the same contents."""
        return LatencyHistogram.merged([self])

    def reset(self) -> None:
        """Forget every value."""
        if self._count:
            self._counts = [0] * BUCKET_COUNT
            self._count = 0
            self._sum = 0.0
            self._min = math.inf
            self._max = -math.inf

    def export(self) -> LatencyHistogramExport:
        """This histogram as a msgspec Struct, non-empty buckets only.

        >>> histogram = LatencyHistogram()
        >>> histogram.record(0.0)
        >>> msgspec.json.encode(histogram.export())
        b'{"v":1,"count":1,"sum":0.0,"min":0.0,"max":0.0,"buckets":{"0":1}}'
        """
        return LatencyHistogramExport(
            count=self._count,
            sum=self.sum,
            min=self.min,
            max=self.max,
            buckets={index: count for index, count in enumerate(self._counts) if count},
        )

    @classmethod
    def from_export(cls, export: LatencyHistogramExport) -> LatencyHistogram:
        """The histogram that `export` describes.

        Raises `ValueError` when the export cannot have come from a histogram
        of this layout (another schema version, a bucket out of range, counts
        that do not add up, or `min`/`max` outside their buckets), so a corrupt
        message from another replica is refused rather than merged.

        >>> histogram = LatencyHistogram()
        >>> histogram.record(12.5)
        >>> LatencyHistogram.from_export(histogram.export()).max
        12.5
        """
        _check_export(export)
        histogram = cls()
        if export.count:
            for index, count in export.buckets.items():
                histogram._counts[index] = count
            histogram._count = export.count
            histogram._sum = export.sum
            histogram._min = export.min
            histogram._max = export.max
        return histogram

    def __repr__(self) -> str:
        return (
            f"LatencyHistogram(count={self.count}, min={self.min}, "
            f"p50={self.quantile(0.5)}, max={self.max})"
        )

    def _rank(self, q: float) -> int:
        return max(1, math.ceil(q * self._count))

    def _value_at(self, index: int, rank: int) -> float:
        # The ends are known exactly; in between, the bucket's midpoint bounds
        # the error, and clamping to [min, max] can only move it closer.
        if rank == 1:
            return float(self._min)
        if rank == self._count:
            return float(self._max)
        low, high = bucket_bounds(index)
        return float(min(max((low + high) / 2, self._min), self._max))


def _check_export(export: LatencyHistogramExport) -> None:
    def refuse(problem: str) -> ValueError:
        return ValueError(f"latency histogram export refused: {problem}")

    if export.v != SCHEMA_VERSION:
        raise refuse(f"schema version v={export.v!r}, expected {SCHEMA_VERSION}")
    for index, count in export.buckets.items():
        if not 0 <= index < BUCKET_COUNT:
            raise refuse(f"bucket index {index!r} outside 0..{_TOP}")
        if count < 1:
            raise refuse(f"bucket {index} has count {count!r}, expected >= 1")
    total = sum(export.buckets.values())
    if export.count != total:
        raise refuse(f"count={export.count!r} but the buckets hold {total}")
    if not all(math.isfinite(value) for value in (export.sum, export.min, export.max)):
        raise refuse(f"sum={export.sum!r}, min={export.min!r}, max={export.max!r}: not all finite")
    if not export.count:
        return
    if export.min > export.max:
        raise refuse(f"min={export.min!r} > max={export.max!r}")
    if bucket_index(export.min) != min(export.buckets):
        raise refuse(f"min={export.min!r} does not lie in the lowest non-empty bucket")
    if bucket_index(export.max) != max(export.buckets):
        raise refuse(f"max={export.max!r} does not lie in the highest non-empty bucket")
