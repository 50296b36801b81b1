"""A token bucket, as arithmetic only: callers pass `now`, nothing here reads a clock.

The bucket is stored as the moment it will be full again (`full_at`, GCRA's
"theoretical arrival time") rather than as a token count. A take of `n` is
possible once ``full_at + (n - capacity) / rate <= now``, and that left-hand
side is computed the same way before and after a wait. So `wait_time` is
exact: taking at ``now + wait_time(now)`` succeeds, and any earlier take
fails, with no refill sums whose rounding differs between the two.
"""

from __future__ import annotations

import math

from meshgate.resilience.validation import positive_number


def seconds_until(ready_at: float, now: float) -> float:
    """Seconds from `now` to `ready_at` (0 if it has passed), rounded up so that
    ``now + result >= ready_at`` also holds in floating point.

    >>> seconds_until(1.5, 1.0), seconds_until(1.0, 2.0)
    (0.5, 0.0)
    """
    if ready_at <= now:
        return 0.0
    wait = ready_at - now
    # `ready_at - now` may round down, and a caller that sleeps that long and
    # asks again must be admitted; one or two ulps up always suffice.
    while now + wait < ready_at:
        wait = math.nextafter(wait, math.inf)
    return wait


def _bad_amount(n: float) -> ValueError:
    return ValueError(f"n={n!r} is not allowed: expected a number of tokens > 0")


class TokenBucket:
    """Holds up to `capacity` tokens and gains `refill_per_second` of them each
    second. It starts full, so a burst of `capacity` passes at once.

    >>> bucket = TokenBucket(capacity=2, refill_per_second=1.0)
    >>> bucket.try_take(0.0), bucket.try_take(0.0), bucket.try_take(0.0)
    (True, True, False)
    >>> bucket.wait_time(0.0)
    1.0
    >>> bucket.try_take(1.0)
    True
    """

    __slots__ = ("_capacity", "_full_at", "_rate")

    def __init__(self, capacity: float, refill_per_second: float) -> None:
        self._capacity = positive_number("capacity", capacity)
        self._rate = positive_number("refill_per_second", refill_per_second)
        # full since forever: the first take at any `now` finds `capacity` tokens
        self._full_at = -math.inf

    @property
    def capacity(self) -> float:
        return self._capacity

    @property
    def refill_per_second(self) -> float:
        return self._rate

    def try_take(self, now: float, n: float = 1) -> bool:
        """Take `n` tokens if the bucket holds them at `now`; never waits.

        >>> TokenBucket(capacity=5, refill_per_second=1.0).try_take(0.0, n=5)
        True
        """
        if not n > 0:  # also refuses NaN
            raise _bad_amount(n)
        start = self._full_at if self._full_at > now else now
        if start + (n - self._capacity) / self._rate <= now:
            self._full_at = start + n / self._rate
            return True
        return False

    def wait_time(self, now: float, n: float = 1) -> float:
        """Seconds from `now` until `n` tokens are there (0 if they are now);
        `math.inf` if `n` exceeds the capacity. Suits an HTTP `Retry-After`.

        >>> bucket = TokenBucket(capacity=1, refill_per_second=4.0)
        >>> bucket.try_take(10.0), bucket.wait_time(10.0)
        (True, 0.25)
        """
        if not n > 0:
            raise _bad_amount(n)
        if n > self._capacity:
            return math.inf
        start = self._full_at if self._full_at > now else now
        return seconds_until(start + (n - self._capacity) / self._rate, now)

    def reserve(self, now: float, n: float = 1) -> float:
        """Take `n` tokens now even if the bucket must first refill them, and
        return the seconds the caller has to wait before using them.

        Reservations run the bucket into debt, so they are served in the order
        they were made and every later `try_take` waits behind them.

        >>> bucket = TokenBucket(capacity=1, refill_per_second=2.0)
        >>> bucket.reserve(0.0), bucket.reserve(0.0), bucket.reserve(0.0)
        (0.0, 0.5, 1.0)
        """
        if not n > 0:
            raise _bad_amount(n)
        if n > self._capacity:
            raise ValueError(
                f"n={n!r} is not allowed: a bucket of capacity {self._capacity:g} never holds it"
            )
        start = self._full_at if self._full_at > now else now
        self._full_at = start + n / self._rate
        return seconds_until(start + (n - self._capacity) / self._rate, now)

    def available(self, now: float) -> float:
        """Tokens in the bucket at `now` (0 while it is in debt to reservations).

        >>> bucket = TokenBucket(capacity=10, refill_per_second=1.0)
        >>> bucket.try_take(0.0, n=4), bucket.available(0.0), bucket.available(2.0)
        (True, 6.0, 8.0)
        """
        return max(0.0, self._tokens(now))

    def reconfigure(self, capacity: float, refill_per_second: float, now: float) -> None:
        """Change capacity and rate from `now` on, keeping the tokens held at
        `now` (cut to the new capacity) and any debt to reservations.

        Keeping the count, rather than refilling to the new capacity, means a
        quota that is re-shared between replicas never lets the cluster as a
        whole burst above its total.

        >>> bucket = TokenBucket(capacity=10, refill_per_second=1.0)
        >>> bucket.try_take(0.0, n=8)
        True
        >>> bucket.reconfigure(capacity=20, refill_per_second=2.0, now=0.0)
        >>> bucket.available(0.0), bucket.available(1.0)
        (2.0, 4.0)
        """
        capacity = positive_number("capacity", capacity)
        rate = positive_number("refill_per_second", refill_per_second)
        tokens = min(capacity, self._tokens(now))
        self._capacity = capacity
        self._rate = rate
        self._full_at = now + (capacity - tokens) / rate

    def _tokens(self, now: float) -> float:
        """Tokens at `now`; negative while reservations are not yet paid for."""
        if self._full_at <= now:
            return self._capacity
        return self._capacity - (self._full_at - now) * self._rate

    def __repr__(self) -> str:
        return f"TokenBucket(capacity={self._capacity:g}, refill_per_second={self._rate:g})"
