"""A retry budget: retries may add at most `ratio` extra load, as in Finagle's
`RetryBudget` and Envoy's retry budgets.

A fixed retry count multiplies load exactly when a service is struggling:
with three attempts, a dependency that fails everything sees three times its
usual traffic. A budget caps that. Over the last `window` seconds it admits a
retry only while

    retries + 1 <= ratio * requests + min_retries_per_second * window

where `requests` counts first attempts only. The second term is a floor, so a
service with little traffic can still retry at all.

Rule: no clock reads and no I/O here; every call passes `now` (seconds, from
a clock that never goes back). Memory is two rings of `buckets` counters;
events age out a bucket (`window / buckets` seconds) at a time, so the window
the budget sees is between `window - window / buckets` and `window` long.
"""

from __future__ import annotations

from meshgate.resilience.validation import (
    fraction,
    non_negative_number,
    positive_int,
    positive_number,
)


class RetryBudget:
    """Admits a retry while retries stay within `ratio` of requests, plus a floor.

    Share one budget between every policy that calls the same dependency.

    >>> budget = RetryBudget(ratio=0.5, min_retries_per_second=0, window=10.0)
    >>> for _ in range(4):
    ...     budget.record_request(now=0.0)
    >>> [budget.try_retry(now=1.0) for _ in range(3)]
    [True, True, False]
    >>> budget.can_retry(now=20.0)  # the window has moved past all of it
    False
    """

    __slots__ = (
        "_current",
        "_request_counts",
        "_requests",
        "_retries",
        "_retry_counts",
        "_width",
        "buckets",
        "min_retries_per_second",
        "ratio",
        "reserve",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_retries_per_second: float = 10.0,
        window: float = 10.0,
        *,
        buckets: int = 10,
    ) -> None:
        self.ratio = fraction("ratio", ratio)
        self.min_retries_per_second = non_negative_number(
            "min_retries_per_second", min_retries_per_second
        )
        self.window = positive_number("window", window)
        self.buckets = positive_int("buckets", buckets)
        # Retries admitted per window whatever the traffic.
        self.reserve = self.min_retries_per_second * self.window
        self._width = self.window / self.buckets
        self._request_counts = [0] * self.buckets
        self._retry_counts = [0] * self.buckets
        self._requests = 0
        self._retries = 0
        # Absolute number of the newest bucket (now // width); None before any event.
        self._current: int | None = None

    def _advance(self, now: float) -> int:
        """Age out the buckets that `now` has left behind; the ring slot for `now`."""
        index = int(now // self._width)
        current = self._current
        if current is None:
            self._current = index
        elif index > current:
            # At most one pass over the ring, however long the budget sat idle.
            for number in range(current + 1, current + 1 + min(index - current, self.buckets)):
                slot = number % self.buckets
                self._requests -= self._request_counts[slot]
                self._retries -= self._retry_counts[slot]
                self._request_counts[slot] = 0
                self._retry_counts[slot] = 0
            self._current = index
        else:
            # A `now` older than the newest bucket counts in the newest bucket,
            # so an out-of-order report cannot resurrect a bucket already cleared.
            index = current
        return index % self.buckets

    def record_request(self, now: float) -> None:
        """Count a first attempt: each one earns `ratio` of a retry."""
        slot = self._advance(now)
        self._request_counts[slot] += 1
        self._requests += 1

    def record_retry(self, now: float) -> None:
        """Count a retry whether or not the budget admits it (for retries
        decided elsewhere); `try_retry` checks and counts in one step."""
        slot = self._advance(now)
        self._retry_counts[slot] += 1
        self._retries += 1

    def balance(self, now: float) -> float:
        """How many retries the budget would admit at `now` (may be fractional or negative).

        >>> RetryBudget(ratio=0.2, min_retries_per_second=1, window=10).balance(now=0.0)
        10.0
        """
        self._advance(now)
        return self.ratio * self._requests + self.reserve - self._retries

    def can_retry(self, now: float) -> bool:
        """Whether a retry at `now` stays within the budget; records nothing."""
        self._advance(now)
        return self._retries + 1 <= self.ratio * self._requests + self.reserve

    def try_retry(self, now: float) -> bool:
        """Count a retry at `now` if the budget admits it; whether it did."""
        slot = self._advance(now)
        if self._retries + 1 > self.ratio * self._requests + self.reserve:
            return False
        self._retry_counts[slot] += 1
        self._retries += 1
        return True

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, "
            f"min_retries_per_second={self.min_retries_per_second!r}, "
            f"window={self.window!r}, buckets={self.buckets!r})"
        )
