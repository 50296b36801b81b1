"""`Bulkhead`: at most `max_concurrent` calls at once, the rest wait in a
bounded FIFO queue or are refused.

Rules that keep it exact and cheap:

- A slot that frees while someone waits is handed straight to the oldest
  waiter (`active` does not drop), so a newcomer can never overtake the queue.
  Hence, whenever anyone waits, `active >= max_concurrent`, and the fast path
  needs to test `active < max_concurrent` only.
- The fast path (a slot is free) awaits nothing but the call itself; only a
  caller that has to wait creates an `anyio.Event`.
- A waiter that gives up (timeout or cancellation) leaves the queue; if the
  slot was handed to it in the same instant, it hands the slot on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio

from meshgate.resilience.errors import BulkheadFullError, BulkheadTimeoutError
from meshgate.resilience.validation import non_negative_int, positive_int, positive_number

P = ParamSpec("P")
T = TypeVar("T")


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


class Bulkhead:
    """Isolates a resource pool: `max_concurrent` calls run, up to `max_queue`
    more wait in arrival order for at most `queue_timeout` seconds (None: no
    limit), any further call fails at once with `BulkheadFullError`.

    >>> bulkhead = Bulkhead(max_concurrent=10, max_queue=20, queue_timeout=5.0)
    >>> async def query(sql: str) -> list[str]:
    ...     return []
    >>> # rows = await bulkhead.execute(query, "select 1")
    >>> bulkhead.active, bulkhead.queued, bulkhead.available
    (0, 0, 10)
    """

    __slots__ = ("_active", "_limit", "_max_queue", "_queue_timeout", "_waiters")

    def __init__(
        self, max_concurrent: int = 10, max_queue: int = 0, queue_timeout: float | None = None
    ) -> None:
        self._limit = positive_int("max_concurrent", max_concurrent)
        self._max_queue = non_negative_int("max_queue", max_queue)
        self._queue_timeout = (
            None if queue_timeout is None else positive_number("queue_timeout", queue_timeout)
        )
        self._active = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def max_concurrent(self) -> int:
        return self._limit

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        """Change the limit at runtime. Raising it lets waiters in at once;
        lowering it lets running calls finish and admits no one until `active`
        is below the new limit."""
        self._limit = positive_int("max_concurrent", value)
        while self._waiters and self._active < self._limit:
            self._active += 1
            self._grant(self._waiters.popleft())

    @property
    def max_queue(self) -> int:
        return self._max_queue

    @property
    def queue_timeout(self) -> float | None:
        return self._queue_timeout

    @property
    def active(self) -> int:
        """Slots taken: running calls, and waiters a slot was just handed to."""
        return self._active

    @property
    def queued(self) -> int:
        """Calls waiting for a slot."""
        return len(self._waiters)

    @property
    def available(self) -> int:
        """Free slots."""
        return max(0, self._limit - self._active)

    async def execute(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `fn(*args, **kwargs)` in a slot, waiting in the queue if need be.

        Raises `BulkheadFullError` at once when slots and queue are full, and
        `BulkheadTimeoutError` after `queue_timeout` seconds in the queue.

        >>> async def render(page: str) -> str:
        ...     return page
        >>> # html = await Bulkhead(max_concurrent=5).execute(render, "home")
        """
        # `acquire` inlined: an extra coroutine would cost a third of the overhead
        if self._active < self._limit:
            self._active += 1
        else:
            await self._wait_for_slot()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if need be; pair with `release`.
        For callers that hold a slot across more than one awaited call.

        >>> async def proxy(bulkhead: Bulkhead) -> None:
        ...     await bulkhead.acquire()
        ...     try:
        ...         ...  # forward the request
        ...     finally:
        ...         bulkhead.release()
        """
        if self._active < self._limit:
            self._active += 1
        else:
            await self._wait_for_slot()

    def release(self) -> None:
        """Give back a slot taken by `acquire`: to the oldest waiter while the
        limit allows, otherwise to the pool."""
        if self._waiters and self._active <= self._limit:
            self._grant(self._waiters.popleft())
        elif self._active > 0:
            self._active -= 1
        else:
            raise RuntimeError("Bulkhead.release() without a slot taken by acquire()")

    async def _wait_for_slot(self) -> None:
        if len(self._waiters) >= self._max_queue:
            raise BulkheadFullError(self._limit, self._max_queue)
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            with anyio.move_on_after(self._queue_timeout):
                await waiter.event.wait()
        except BaseException:
            self._leave(waiter)
            raise
        if not waiter.granted:
            self._leave(waiter)
            assert self._queue_timeout is not None  # only a deadline ends the wait ungranted
            raise BulkheadTimeoutError(self._queue_timeout)

    def _grant(self, waiter: _Waiter) -> None:
        waiter.granted = True
        waiter.event.set()

    def _leave(self, waiter: _Waiter) -> None:
        if waiter.granted:
            # handed a slot in the instant it gave up: pass it on, never leak it
            self.release()
        else:
            # waiters give up mostly in arrival order (same timeout), so the
            # one leaving is usually at the front and this is O(1)
            self._waiters.remove(waiter)

    def __repr__(self) -> str:
        return (
            f"Bulkhead(max_concurrent={self._limit}, max_queue={self._max_queue}, "
            f"queue_timeout={self._queue_timeout}, active={self._active}, queued={self.queued})"
        )
