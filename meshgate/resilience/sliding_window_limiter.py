"""An exact sliding-window log, as arithmetic only: callers pass `now`.

Rule: at most `max` admits in any half-open interval of `window` seconds.
Only the last `max` admit times can ever refuse a request, so they live in a
ring of `max` slots (memory O(max)), oldest at `_head`. A request at `now` is
admitted exactly when the oldest of them has left the window,
``oldest + window <= now``; then it takes that slot. Every operation but
`available` and `reconfigure` is O(1).

`now` must not decrease between calls (the `Clock` contract); the ring then
stays sorted from `_head` on.
"""

from __future__ import annotations

import math
from bisect import bisect_right

from meshgate.resilience.token_bucket import seconds_until
from meshgate.resilience.validation import positive_int, positive_number


class SlidingWindowLimiter:
    """At most `max` admits in any `window` seconds, with no bursts beyond that
    and no reset edge to exploit, unlike fixed windows.

    >>> limiter = SlidingWindowLimiter(max=2, window=10.0)
    >>> limiter.try_take(0.0), limiter.try_take(3.0), limiter.try_take(5.0)
    (True, True, False)
    >>> limiter.wait_time(5.0)
    5.0
    >>> limiter.try_take(10.0)
    True
    """

    __slots__ = ("_head", "_max", "_times", "_window")

    def __init__(self, max: int, window: float) -> None:
        self._max = positive_int("max", max)
        self._window = positive_number("window", window)
        # -inf marks a slot that has never held an admit: it left every window long ago
        self._times = [-math.inf] * self._max
        self._head = 0

    @property
    def max(self) -> int:
        return self._max

    @property
    def window(self) -> float:
        return self._window

    def try_take(self, now: float) -> bool:
        """Admit at `now` if fewer than `max` admits lie in the window ending at `now`.

        >>> SlidingWindowLimiter(max=1, window=1.0).try_take(0.0)
        True
        """
        head = self._head
        if self._times[head] + self._window <= now:
            self._times[head] = now
            self._head = head + 1 if head + 1 < self._max else 0
            return True
        return False

    def wait_time(self, now: float) -> float:
        """Seconds from `now` until a request would be admitted (0 if it would be now).

        >>> limiter = SlidingWindowLimiter(max=1, window=60.0)
        >>> limiter.try_take(0.0), limiter.wait_time(15.0)
        (True, 45.0)
        """
        return seconds_until(self._times[self._head] + self._window, now)

    def reserve(self, now: float) -> float:
        """Book the earliest admit at or after `now` and return the seconds
        until it. Bookings are served in the order they were made, and
        `try_take` waits behind them.

        >>> limiter = SlidingWindowLimiter(max=1, window=2.0)
        >>> limiter.reserve(0.0), limiter.reserve(0.0), limiter.reserve(1.0)
        (0.0, 2.0, 3.0)
        """
        head = self._head
        ready_at = self._times[head] + self._window
        admit_at = ready_at if ready_at > now else now
        self._times[head] = admit_at
        self._head = head + 1 if head + 1 < self._max else 0
        return seconds_until(admit_at, now)

    def available(self, now: float) -> int:
        """How many requests would be admitted at `now`, one after the other.

        >>> limiter = SlidingWindowLimiter(max=3, window=10.0)
        >>> limiter.try_take(0.0), limiter.try_take(4.0), limiter.available(5.0)
        (True, True, 1)
        >>> limiter.available(10.0)
        2
        """
        window = self._window
        head = self._head

        def leaves_at(admitted_at: float) -> float:
            # the same sum `try_take` compares, so both agree at the boundary
            return admitted_at + window

        # the ring is sorted in two runs: [head, max) then [0, head)
        count = bisect_right(self._times, now, head, self._max, key=leaves_at) - head
        if count == self._max - head:
            count += bisect_right(self._times, now, 0, head, key=leaves_at)
        return count

    def reconfigure(self, max: int, window: float, now: float) -> None:
        """Allow `max` admits per `window` from now on, judged against the
        admits already made: shrinking keeps the newest, growing frees slots.

        `now` is accepted so that both limiters reconfigure alike; the log
        itself carries all the time it needs.

        >>> limiter = SlidingWindowLimiter(max=1, window=10.0)
        >>> limiter.try_take(0.0), limiter.try_take(1.0)
        (True, False)
        >>> limiter.reconfigure(max=2, window=10.0, now=1.0)
        >>> limiter.try_take(1.0)
        True
        """
        max = positive_int("max", max)
        self._window = positive_number("window", window)
        oldest_first = self._times[self._head :] + self._times[: self._head]
        if max <= len(oldest_first):
            self._times = oldest_first[len(oldest_first) - max :]
        else:
            self._times = [-math.inf] * (max - len(oldest_first)) + oldest_first
        self._max = max
        self._head = 0

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(max={self._max}, window={self._window:g})"
