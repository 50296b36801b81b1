"""Concurrency-limit algorithms, after Netflix's concurrency-limits: each turns
a stream of call samples into a limit. Arithmetic only: no clock, no I/O.

A sample is one finished call: when it ended (`now`), how long it took
(`rtt`, seconds), how many calls were in flight when it started, counting
itself (`inflight`), and whether it failed (`dropped`). `on_sample` returns
the new limit, always within ``[min_limit, max_limit]``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from meshgate.resilience.validation import (
    fraction,
    non_negative_int,
    positive_int,
    positive_number,
)


@runtime_checkable
class ConcurrencyLimit(Protocol):
    """What `AdaptiveConcurrencyLimiter` needs from an algorithm."""

    @property
    def limit(self) -> int: ...

    def on_sample(self, now: float, rtt: float, inflight: int, dropped: bool) -> int: ...


def _bounds(initial: int, min_limit: int, max_limit: int) -> tuple[int, int, int]:
    min_limit = positive_int("min_limit", min_limit)
    max_limit = positive_int("max_limit", max_limit)
    if max_limit < min_limit:
        raise ValueError(
            f"max_limit={max_limit!r} is not allowed: expected an integer >= min_limit={min_limit}"
        )
    initial = positive_int("initial", initial)
    if not min_limit <= initial <= max_limit:
        raise ValueError(
            f"initial={initial!r} is not allowed: expected an integer between "
            f"min_limit={min_limit} and max_limit={max_limit}"
        )
    return initial, min_limit, max_limit


class AimdLimit:
    """Additive increase, multiplicative decrease, like TCP's congestion window.

    A successful call that ran while at least half the limit was in use adds
    `increase_by`; a failed call, or one slower than `timeout` seconds,
    multiplies the limit by `backoff_ratio`. Calls made while the limit was
    mostly unused say nothing about it and leave it alone.

    >>> aimd = AimdLimit(initial=10, min_limit=1, max_limit=100)
    >>> aimd.on_sample(now=0.0, rtt=0.05, inflight=8, dropped=False)
    11
    >>> aimd.on_sample(now=0.1, rtt=0.05, inflight=8, dropped=True)
    9
    """

    __slots__ = ("_backoff_ratio", "_increase_by", "_limit", "_max", "_min", "_timeout")

    def __init__(
        self,
        initial: int = 20,
        min_limit: int = 1,
        max_limit: int = 200,
        backoff_ratio: float = 0.9,
        increase_by: int = 1,
        timeout: float = 5.0,
    ) -> None:
        self._limit, self._min, self._max = _bounds(initial, min_limit, max_limit)
        backoff_ratio = fraction("backoff_ratio", backoff_ratio)
        if not 0.5 <= backoff_ratio < 1:
            # below 0.5 one failure halves the limit more than TCP ever does;
            # 1 would never back off at all
            raise ValueError(
                f"backoff_ratio={backoff_ratio!r} is not allowed: expected a number in [0.5, 1)"
            )
        self._backoff_ratio = backoff_ratio
        self._increase_by = positive_int("increase_by", increase_by)
        self._timeout = positive_number("timeout", timeout)

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, now: float, rtt: float, inflight: int, dropped: bool) -> int:
        """Fold one finished call into the limit and return the new limit."""
        limit = self._limit
        if dropped or rtt > self._timeout:
            # int() floors, so every backoff lowers the limit by at least one
            limit = int(limit * self._backoff_ratio)
        elif inflight * 2 >= limit:
            limit += self._increase_by
        self._limit = min(self._max, max(self._min, limit))
        return self._limit

    def __repr__(self) -> str:
        return f"AimdLimit(limit={self._limit}, min_limit={self._min}, max_limit={self._max})"


class GradientLimit:
    """Follows the ratio of long-term to short-term latency (Netflix's Gradient2).

    The long-term RTT is an average over about `long_window` samples; the
    short-term RTT is the sample's own. While they agree (within
    `rtt_tolerance`), the limit grows by up to `queue_size` per sample, the
    allowance that lets a little queueing show. When latency rises, the
    gradient ``rtt_tolerance * long / short`` (between 0.5 and 1) shrinks the
    limit in proportion; a failed call counts as the steepest gradient, 0.5.
    Each step moves only `smoothing` of the way to its target, so one outlier
    cannot collapse the limit.

    >>> gradient = GradientLimit(initial=10, min_limit=1, max_limit=100)
    >>> [gradient.on_sample(now=0.0, rtt=0.010, inflight=10, dropped=False) for _ in range(4)]
    [10, 11, 12, 13]
    >>> gradient.on_sample(now=0.1, rtt=0.010, inflight=10, dropped=True)
    11
    """

    __slots__ = (
        "_estimate",
        "_long_rtt",
        "_long_window",
        "_max",
        "_min",
        "_queue_size",
        "_samples",
        "_smoothing",
        "_tolerance",
    )

    # the long average is a plain mean over its first samples, so a cold start
    # does not weigh the very first RTT as if it were the last `long_window`
    _WARMUP_SAMPLES = 10

    def __init__(
        self,
        initial: int = 20,
        min_limit: int = 1,
        max_limit: int = 200,
        smoothing: float = 0.2,
        rtt_tolerance: float = 1.5,
        long_window: int = 600,
        queue_size: int = 4,
    ) -> None:
        initial, self._min, self._max = _bounds(initial, min_limit, max_limit)
        self._estimate = float(initial)
        smoothing = fraction("smoothing", smoothing)
        if smoothing == 0:
            raise ValueError("smoothing=0 is not allowed: expected a number in (0, 1]")
        self._smoothing = smoothing
        tolerance = positive_number("rtt_tolerance", rtt_tolerance)
        if tolerance < 1:
            raise ValueError(
                f"rtt_tolerance={rtt_tolerance!r} is not allowed: expected a number >= 1"
            )
        self._tolerance = tolerance
        self._long_window = positive_int("long_window", long_window)
        self._queue_size = non_negative_int("queue_size", queue_size)
        self._long_rtt = 0.0
        self._samples = 0

    @property
    def limit(self) -> int:
        return int(self._estimate)

    @property
    def long_rtt(self) -> float:
        """The long-term RTT average, seconds (0 before the first successful sample)."""
        return self._long_rtt

    def on_sample(self, now: float, rtt: float, inflight: int, dropped: bool) -> int:
        """Fold one finished call into the limit and return the new limit."""
        estimate = self._estimate
        if dropped:
            # a failure's RTT (often a fast refusal) would skew the baseline,
            # so it feeds only the cut, not the averages
            target = estimate * 0.5
        else:
            long_rtt = self._fold_long(rtt)
            if rtt > 0 and long_rtt / rtt > 2:
                # latency back to normal after long overload: pull the long
                # average down faster than its window would
                self._long_rtt = long_rtt = long_rtt * 0.95
            if inflight * 2 < estimate:
                # the limit is not what holds the caller back: no evidence either way
                return self.limit
            gradient = 1.0 if rtt <= 0 else max(0.5, min(1.0, self._tolerance * long_rtt / rtt))
            target = estimate * gradient + self._queue_size
        estimate = estimate * (1 - self._smoothing) + target * self._smoothing
        self._estimate = min(float(self._max), max(float(self._min), estimate))
        return self.limit

    def _fold_long(self, rtt: float) -> float:
        self._samples += 1
        if self._samples <= self._WARMUP_SAMPLES:
            self._long_rtt += (rtt - self._long_rtt) / self._samples
        else:
            factor = 2 / (self._long_window + 1)
            self._long_rtt += (rtt - self._long_rtt) * factor
        return self._long_rtt

    def __repr__(self) -> str:
        return (
            f"GradientLimit(limit={self.limit}, min_limit={self._min}, max_limit={self._max}, "
            f"long_rtt={self._long_rtt:.6f})"
        )
