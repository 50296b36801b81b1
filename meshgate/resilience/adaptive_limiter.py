"""`AdaptiveConcurrencyLimiter`: a `Bulkhead` whose `max_concurrent` an
algorithm from `adaptive_limit` sets after every call, from the call's RTT and
outcome. Queueing, fairness and cancellation are the bulkhead's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, ParamSpec, TypeVar

from meshgate.resilience.adaptive_limit import AimdLimit, ConcurrencyLimit, GradientLimit
from meshgate.resilience.bulkhead import Bulkhead
from meshgate.resilience.clock import Clock, monotonic

P = ParamSpec("P")
T = TypeVar("T")

LimitName = Literal["aimd", "gradient"]
_ALGORITHMS: dict[str, Callable[[], ConcurrencyLimit]] = {
    "aimd": AimdLimit,
    "gradient": GradientLimit,
}


def _algorithm(limit: LimitName | ConcurrencyLimit) -> ConcurrencyLimit:
    if isinstance(limit, str):
        if limit in _ALGORITHMS:
            return _ALGORITHMS[limit]()
    elif isinstance(limit, ConcurrencyLimit):
        return limit
    raise ValueError(
        f"limit={limit!r} is not allowed: expected 'aimd', 'gradient' or an object "
        "with a `limit` property and an `on_sample(now, rtt, inflight, dropped)` method"
    )


class AdaptiveConcurrencyLimiter:
    """Runs at most `limit` calls at once, where the limit follows the
    service's latency and failures instead of being configured.

    `limit` is `"aimd"`, `"gradient"` (their default settings) or a configured
    algorithm such as ``AimdLimit(initial=50, max_limit=500)``. A call that
    raises counts as dropped; a cancelled call is not a sample. Calls over the
    limit queue as in a `Bulkhead(max_queue=..., queue_timeout=...)`.

    >>> limiter = AdaptiveConcurrencyLimiter("aimd", max_queue=100, queue_timeout=1.0)
    >>> async def lookup(user_id: int) -> str:
    ...     return "ada"
    >>> # name = await limiter.execute(lookup, 7)
    >>> limiter.limit
    20
    """

    __slots__ = ("_algorithm", "_bulkhead", "_clock")

    def __init__(
        self,
        limit: LimitName | ConcurrencyLimit = "aimd",
        *,
        clock: Clock = monotonic,
        max_queue: int = 0,
        queue_timeout: float | None = None,
    ) -> None:
        self._algorithm = _algorithm(limit)
        self._clock = clock
        self._bulkhead = Bulkhead(self._algorithm.limit, max_queue, queue_timeout)

    @property
    def limit(self) -> int:
        """The concurrency limit now in force."""
        return self._bulkhead.max_concurrent

    @property
    def algorithm(self) -> ConcurrencyLimit:
        return self._algorithm

    @property
    def active(self) -> int:
        return self._bulkhead.active

    @property
    def queued(self) -> int:
        return self._bulkhead.queued

    async def execute(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `fn(*args, **kwargs)` within the limit, then feed its RTT and
        outcome to the algorithm. Raises `BulkheadFullError` or
        `BulkheadTimeoutError` like a bulkhead when it cannot get a slot.

        >>> async def charge(amount: int) -> str:
        ...     return "ok"
        >>> # await AdaptiveConcurrencyLimiter("gradient").execute(charge, 10)
        """
        bulkhead = self._bulkhead
        await bulkhead.acquire()
        inflight = bulkhead.active
        start = self._clock()
        try:
            try:
                result = await fn(*args, **kwargs)
            except Exception:
                self._record(start, inflight, dropped=True)
                raise
            self._record(start, inflight, dropped=False)
            return result
        finally:
            # after `_record`, so the freed slot is handed out under the new limit
            bulkhead.release()

    def _record(self, start: float, inflight: int, *, dropped: bool) -> None:
        now = self._clock()
        limit = self._algorithm.on_sample(now, now - start, inflight, dropped)
        if limit != self._bulkhead.max_concurrent:
            self._bulkhead.max_concurrent = limit

    def __repr__(self) -> str:
        return (
            f"AdaptiveConcurrencyLimiter({self._algorithm!r}, active={self.active}, "
            f"queued={self.queued})"
        )
