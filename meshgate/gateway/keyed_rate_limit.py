"""Rate limits per key (client IP, a header's value, or the whole route),
as arithmetic only: callers pass `now`.

Each key gets its own limiter of the route's strategy: a token bucket
(`max` tokens, refilled at `max / window` per second, so bursts up to `max`)
or an exact sliding window (`max` admits in any `window` seconds). Keys live
in an LRU of at most `max_keys` entries, so a flood of distinct client IPs
costs bounded memory; an evicted key comes back with a full allowance, which
errs on the side of letting a rare client through.

`scale` is this replica's share of a cluster-wide limit (1.0 alone): the
cluster layer sets it from the live replicas and their observed demand,
which it reads from `checked` (requests checked since start, admitted or not).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

import msgspec

from meshgate.resilience.sliding_window_limiter import SlidingWindowLimiter
from meshgate.resilience.token_bucket import TokenBucket
from meshgate.resilience.validation import positive_int, positive_number

Strategy = Literal["token-bucket", "sliding-window"]


class RateDecision(msgspec.Struct, frozen=True):
    """What one request learnt: admitted or not, and the numbers for the
    `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
    `Retry-After` headers (seconds, rounded up by the caller)."""

    admitted: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


class KeyedRateLimit:
    """One limiter per key.

    >>> limit = KeyedRateLimit("token-bucket", max=2, window=60.0)
    >>> [limit.check("10.0.0.1", 0.0).admitted for _ in range(3)]
    [True, True, False]
    >>> limit.check("10.0.0.2", 0.0).admitted
    True
    >>> limit.check("10.0.0.1", 0.0).retry_after
    30.0
    """

    __slots__ = ("_limiters", "_max", "_window", "checked", "max_keys", "scale", "strategy")

    def __init__(
        self, strategy: Strategy, max: int, window: float, *, max_keys: int = 100_000
    ) -> None:
        if strategy not in ("token-bucket", "sliding-window"):
            raise ValueError(
                f"strategy={strategy!r} is not allowed: expected 'token-bucket' or 'sliding-window'"
            )
        self.strategy: Strategy = strategy
        self._max = positive_int("max", max)
        self._window = positive_number("window", window)
        self.max_keys = positive_int("max_keys", max_keys)
        self.scale = 1.0
        self.checked = 0
        self._limiters: OrderedDict[str, TokenBucket | SlidingWindowLimiter] = OrderedDict()

    @property
    def max(self) -> int:
        return self._max

    @property
    def window(self) -> float:
        return self._window

    @property
    def effective_max(self) -> int:
        """This replica's permits per window: the whole `max` scaled by its share."""
        return max(1, math.floor(self._max * self.scale))

    def check(self, key: str, now: float) -> RateDecision:
        """Take a permit for `key` at `now` if there is one."""
        self.checked += 1
        limiters = self._limiters
        limiter = limiters.get(key)
        if limiter is None:
            limiter = self._new_limiter(now)
            limiters[key] = limiter
            if len(limiters) > self.max_keys:
                limiters.popitem(last=False)
        else:
            limiters.move_to_end(key)
        admitted = limiter.try_take(now)
        available = limiter.available(now)
        remaining = math.floor(available)
        limit = max(1, math.floor(self._max * self.scale))  # effective_max, inlined
        if isinstance(limiter, TokenBucket):
            # The bucket is full again after refilling what is missing.
            reset_after = (limiter.capacity - available) / limiter.refill_per_second
        else:
            reset_after = limiter.wait_time(now) if remaining == 0 else 0.0
        retry_after = 0.0 if admitted else limiter.wait_time(now)
        return RateDecision(admitted, limit, remaining, reset_after, retry_after)

    def rescale(self, scale: float, now: float) -> None:
        """Give this replica `scale` (0 < scale <= 1) of the limit from `now` on,
        keeping each key's used permits (no burst on a rescale)."""
        self.scale = positive_number("scale", min(scale, 1.0))
        limit = self.effective_max
        for key, limiter in self._limiters.items():
            if isinstance(limiter, SlidingWindowLimiter):
                limiter.reconfigure(limit, self._window, now)
                continue
            # Carry over the permits used, not the tokens left: a replica that
            # spent 40 of its old 100 has 10 left of a new share of 50.
            used = round(limiter.capacity - limiter.available(now), 6)  # float dust
            bucket = TokenBucket(limit, limit / self._window)
            while used > 1e-9:
                chunk = min(used, float(limit))
                bucket.reserve(now, chunk)
                used -= chunk
            self._limiters[key] = bucket

    def key_count(self) -> int:
        return len(self._limiters)

    def _new_limiter(self, now: float) -> TokenBucket | SlidingWindowLimiter:
        limit = self.effective_max
        if self.strategy == "token-bucket":
            return TokenBucket(limit, limit / self._window)
        return SlidingWindowLimiter(limit, self._window)
