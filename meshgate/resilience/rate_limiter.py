"""`RateLimiter`: a clock and one of two permit cores, `TokenBucket` or
`SlidingWindowLimiter`. All arithmetic lives in the cores; this file reads the
clock, refuses or waits, and calls."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Literal, ParamSpec, Protocol, TypeVar

import anyio

from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.errors import RateLimitExceededError
from meshgate.resilience.sliding_window_limiter import SlidingWindowLimiter
from meshgate.resilience.token_bucket import TokenBucket
from meshgate.resilience.validation import (
    non_negative_number,
    one_of,
    positive_int,
    positive_number,
)

P = ParamSpec("P")
T = TypeVar("T")

Strategy = Literal["token-bucket", "sliding-window"]
STRATEGIES: tuple[Strategy, ...] = ("token-bucket", "sliding-window")


class _Permits(Protocol):
    def try_take(self, now: float) -> bool: ...
    def wait_time(self, now: float) -> float: ...
    def reserve(self, now: float) -> float: ...
    def available(self, now: float) -> float: ...


class RateLimiter:
    """At most `max` calls per `window` seconds.

    `"token-bucket"` (the default) holds `max` permits and refills them at
    `max / window` per second, so a quiet client may burst up to `max` at once.
    `"sliding-window"` admits at most `max` in any `window` seconds, exactly.

    >>> limiter = RateLimiter("token-bucket", max=100, window=60.0)
    >>> limiter.try_acquire()
    True
    >>> async def search(term: str) -> list[str]:
    ...     return [term]
    >>> # await limiter.execute(search, "shoes")  raises RateLimitExceededError when over
    """

    __slots__ = ("_clock", "_core", "_max", "_strategy", "_try_take", "_window")

    def __init__(
        self,
        strategy: Strategy = "token-bucket",
        max: int = 100,
        window: float = 60.0,
        *,
        clock: Clock = monotonic,
    ) -> None:
        self._strategy = one_of("strategy", strategy, STRATEGIES)
        self._max = positive_int("max", max)
        self._window = positive_number("window", window)
        self._clock = clock
        self._core: TokenBucket | SlidingWindowLimiter
        if strategy == "token-bucket":
            self._core = TokenBucket(capacity=max, refill_per_second=max / window)
        else:
            self._core = SlidingWindowLimiter(max=max, window=window)
        # bound once: the permit check is the whole cost of a call, so skip the lookups
        self._try_take = self._core.try_take

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def max(self) -> int:
        return self._max

    @property
    def window(self) -> float:
        return self._window

    def try_acquire(self) -> bool:
        """Take a permit if one is free now; never waits. Also the way to guard
        a sync call: ``if limiter.try_acquire(): send()``.

        >>> limiter = RateLimiter(max=1, window=1.0)
        >>> limiter.try_acquire(), limiter.try_acquire()
        (True, False)
        """
        return self._try_take(self._clock())

    def time_until_next_permit(self) -> float:
        """Seconds until a permit is free (0 if one is now), for `Retry-After`.

        >>> limiter = RateLimiter(max=1, window=60.0)
        >>> limiter.try_acquire(), 59.0 < limiter.time_until_next_permit() <= 60.0
        (True, True)
        """
        core: _Permits = self._core
        return core.wait_time(self._clock())

    def available_permits(self) -> int:
        """Permits that could be taken right now, one after the other
        (for `X-RateLimit-Remaining`).

        >>> RateLimiter(max=5, window=1.0).available_permits()
        5
        """
        core: _Permits = self._core
        return math.floor(core.available(self._clock()))

    async def execute(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `fn(*args, **kwargs)` if a permit is free; otherwise raise
        `RateLimitExceededError` at once, with `retry_after` seconds, and do not call.

        >>> async def charge(amount: int) -> str:
        ...     return f"charged {amount}"
        >>> # await RateLimiter(max=10, window=1.0).execute(charge, 5) == "charged 5"
        """
        if not self._try_take(self._clock()):
            raise RateLimitExceededError(self.time_until_next_permit())
        return await fn(*args, **kwargs)

    async def acquire(self, max_wait: float | None = None) -> None:
        """Wait for a permit, first come first served. If it would not be free
        within `max_wait` seconds, raise `RateLimitExceededError` at once
        instead of waiting in vain.

        The permit is booked before the wait, so a caller cancelled while
        waiting does not give it back: the limiter errs towards fewer calls.

        >>> async def polite_fetch(limiter: RateLimiter) -> None:
        ...     await limiter.acquire(max_wait=5.0)
        ...     # ... the call the permit is for
        """
        if max_wait is not None:
            max_wait = non_negative_number("max_wait", max_wait)
        core: _Permits = self._core
        now = self._clock()
        wait = core.wait_time(now)
        if max_wait is not None and wait > max_wait:
            raise RateLimitExceededError(wait)
        delay = core.reserve(now)
        if delay > 0:
            await anyio.sleep(delay)

    def reconfigure(self, max: int, window: float | None = None) -> None:
        """Allow `max` calls per `window` (unchanged if None) from now on, keeping
        what has been taken so far: for a replica's share of a cluster-wide quota.

        >>> limiter = RateLimiter(max=100, window=60.0)
        >>> limiter.reconfigure(max=50)
        >>> limiter.max, limiter.window
        (50, 60.0)
        """
        max = positive_int("max", max)
        window = self._window if window is None else positive_number("window", window)
        now = self._clock()
        if isinstance(self._core, TokenBucket):
            self._core.reconfigure(capacity=max, refill_per_second=max / window, now=now)
        else:
            self._core.reconfigure(max=max, window=window, now=now)
        self._max = max
        self._window = window

    def __repr__(self) -> str:
        return f"RateLimiter({self._strategy!r}, max={self._max}, window={self._window:g})"
