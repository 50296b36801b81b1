"""Outcome windows: how many of the recent calls failed, and how many were slow.

Two kinds, as in resilience4j:

- `CountWindow` remembers the last `size` calls, in a ring of outcomes;
- `TimeWindow` remembers the calls of the last `size` seconds, summed into a
  fixed number of buckets, so its memory does not grow with the call rate.

Both are pure: they never read a clock; `record` takes `now`. Both keep running
totals, so `record` is O(1) (a `TimeWindow` that skips ahead empties at most
`buckets` buckets) and reading `calls`, `failures` or `slow_calls` is free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from meshgate.resilience.validation import one_of, positive_int, positive_number

WINDOW_TYPES = ("count", "time")

# A time window keeps about one bucket per second, but never so few that a
# short window forgets in coarse steps, nor so many that a long one is costly.
_MIN_BUCKETS = 10
_MAX_BUCKETS = 600

# The head bucket of a window that has seen no call: far enough in the past
# that the first `record` empties every bucket.
_NEVER = -(2**62)


class OutcomeWindow(Protocol):
    """What the breaker needs of a window: totals, and a way to add to them."""

    @property
    def calls(self) -> int: ...

    @property
    def failures(self) -> int: ...

    @property
    def slow_calls(self) -> int: ...

    def record(self, failed: bool, slow: bool, now: float) -> None:
        """Count one finished call that ended at `now`."""

    def advance(self, now: float) -> None:
        """Forget what has aged out of the window by `now`, without recording."""

    def clear(self) -> None:
        """Forget every call."""


class CountWindow:
    """The outcomes of the last `size` calls.

    >>> window = CountWindow(3)
    >>> for failed in (True, False, True, True):
    ...     window.record(failed, False, now=0.0)
    >>> window.calls, window.failures
    (3, 2)
    """

    __slots__ = ("_next", "_ring", "calls", "failures", "size", "slow_calls")

    def __init__(self, size: int) -> None:
        self.size = positive_int("size", size)
        # Each slot holds an outcome as bits: 1 = failed, 2 = slow. An unused
        # slot reads as a fast success, so overwriting it subtracts nothing.
        self._ring = [0] * self.size
        self._next = 0
        self.calls = 0
        self.failures = 0
        self.slow_calls = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        if not (failed or slow or self.failures or self.slow_calls):
            # A fast success into a window of fast successes: every slot reads
            # the same, so which one it overwrites changes nothing.
            if self.calls < self.size:
                self.calls += 1
            return
        slot = self._next
        # Conditionals rather than bit arithmetic on the bools: measured faster.
        new = (3 if slow else 1) if failed else (2 if slow else 0)
        old = self._ring[slot]
        self._ring[slot] = new
        self._next = slot + 1 if slot + 1 < self.size else 0
        if old != new:
            self.failures += (new & 1) - (old & 1)
            self.slow_calls += (new >> 1) - (old >> 1)
        if self.calls < self.size:
            self.calls += 1

    def advance(self, now: float) -> None:
        """Nothing ages out of a count window."""

    def clear(self) -> None:
        self._ring = [0] * self.size
        self._next = 0
        self.calls = self.failures = self.slow_calls = 0

    def __repr__(self) -> str:
        return (
            f"CountWindow(size={self.size}, calls={self.calls}, "
            f"failures={self.failures}, slow_calls={self.slow_calls})"
        )


class TimeWindow:
    """The outcomes of the calls of the last `size` seconds.

    Time is cut into `buckets` buckets of `size / buckets` seconds each (by
    default about one per second, between 10 and 600). A call counts while its
    bucket is one of the last `buckets` ones, that is for at least
    `size - width` and less than `size` seconds after it ended.

    >>> window = TimeWindow(10.0)
    >>> window.record(True, False, now=100.0)
    >>> window.record(False, False, now=105.0)
    >>> window.advance(now=110.5)
    >>> window.calls, window.failures
    (1, 0)
    """

    __slots__ = (
        "_calls",
        "_failures",
        "_head",
        "_head_slot",
        "_slow",
        "buckets",
        "calls",
        "failures",
        "size",
        "slow_calls",
        "width",
    )

    def __init__(self, size: float, buckets: int | None = None) -> None:
        self.size = positive_number("size", size)
        if buckets is None:
            buckets = min(max(math.ceil(self.size), _MIN_BUCKETS), _MAX_BUCKETS)
        self.buckets = positive_int("buckets", buckets)
        self.width = self.size / self.buckets
        self._calls = [0] * self.buckets
        self._failures = [0] * self.buckets
        self._slow = [0] * self.buckets
        self._head = _NEVER
        self._head_slot = 0
        self.calls = 0
        self.failures = 0
        self.slow_calls = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        bucket = int(now // self.width)
        if bucket > self._head:
            self._roll(bucket)
        # A `now` behind the head (a clock that stepped back) lands in the
        # head bucket rather than in one that already holds later calls.
        slot = self._head_slot
        self._calls[slot] += 1
        self.calls += 1
        if failed:
            self._failures[slot] += 1
            self.failures += 1
        if slow:
            self._slow[slot] += 1
            self.slow_calls += 1

    def advance(self, now: float) -> None:
        bucket = int(now // self.width)
        if bucket > self._head:
            self._roll(bucket)

    def clear(self) -> None:
        self._calls = [0] * self.buckets
        self._failures = [0] * self.buckets
        self._slow = [0] * self.buckets
        self._head = _NEVER
        self._head_slot = 0
        self.calls = self.failures = self.slow_calls = 0

    def _roll(self, bucket: int) -> None:
        """Make `bucket` the head, emptying every bucket that ages out."""
        if bucket - self._head >= self.buckets:
            self.clear()
        else:
            for passed in range(self._head + 1, bucket + 1):
                slot = passed % self.buckets
                self.calls -= self._calls[slot]
                self.failures -= self._failures[slot]
                self.slow_calls -= self._slow[slot]
                self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
        self._head = bucket
        self._head_slot = bucket % self.buckets

    def __repr__(self) -> str:
        return (
            f"TimeWindow(size={self.size:g}, buckets={self.buckets}, calls={self.calls}, "
            f"failures={self.failures}, slow_calls={self.slow_calls})"
        )


class WindowSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which window a breaker keeps: `type` ``"count"`` (the last `size` calls)
    or ``"time"`` (the last `size` seconds). Checked when built or decoded.

    >>> WindowSpec(type="time", size=60).build()
    TimeWindow(size=60, buckets=60, calls=0, failures=0, slow_calls=0)
    """

    type: str = "count"
    size: int | float = 20

    def __post_init__(self) -> None:
        one_of("sliding_window.type", self.type, WINDOW_TYPES)
        if self.type == "time":
            positive_number("sliding_window.size", self.size)
        elif isinstance(self.size, int):
            positive_int("sliding_window.size", self.size)
        else:
            raise ValueError(
                f"sliding_window.size={self.size!r} is not allowed: "
                "expected an integer >= 1 (a number of calls)"
            )

    def build(self) -> CountWindow | TimeWindow:
        """A new, empty window of this kind."""
        if self.type == "count":
            return CountWindow(int(self.size))
        return TimeWindow(self.size)


def window_spec(value: WindowSpec | Mapping[str, Any]) -> WindowSpec:
    """`value` as a `WindowSpec`, checked; a mapping takes the keys `type` and `size`.

    >>> window_spec({"type": "count", "size": 50})
    WindowSpec(type='count', size=50)
    """
    if isinstance(value, WindowSpec):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(
            f"sliding_window={value!r} is not allowed: expected a mapping "
            "with 'type' ('count' or 'time') and 'size'"
        )
    unknown = sorted(set(value) - {"type", "size"}, key=str)
    if unknown:
        raise ValueError(
            f"sliding_window.{unknown[0]}={value[unknown[0]]!r} is not allowed: "
            "expected only the keys 'type' and 'size'"
        )
    if "size" not in value:
        raise ValueError(
            "sliding_window.size is missing: expected a number of calls ('count') "
            "or of seconds ('time')"
        )
    return WindowSpec(type=value.get("type", "count"), size=value["size"])
