"""`RetryPolicy`: run a call again when it fails, with backoff between attempts.

What is retried: any `Exception` for which `retry_predicate` answers True (by
default every one, `ResilienceError`s such as `CircuitOpenError` included).
What never is: cancellation and the other `BaseException`s (`KeyboardInterrupt`,
`SystemExit`); under both asyncio and trio cancellation derives from
`BaseException`, so it passes straight through, during a call or a pause.

How a call ends:

- it succeeds: its result;
- the predicate refuses its error: that error, untouched;
- the attempts, or the retry budget, run out: `RetryExhaustedError(attempts,
  last_error)`, raised from the last error.

The first attempt costs a `try` and an `await`: no clock read and nothing
allocated beyond the call itself (with a budget, one clock read and an O(1)
update). Everything else happens only after a failure.
"""

from __future__ import annotations

import inspect
import random as _random
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

import anyio

from meshgate.resilience.backoff import STRATEGIES, Backoff, JitterOption, Strategy
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.errors import RetryExhaustedError
from meshgate.resilience.retry_budget import RetryBudget
from meshgate.resilience.validation import one_of, positive_int

P = ParamSpec("P")
T = TypeVar("T")

RetryPredicate = Callable[[Exception], bool]
"""Whether an error is worth another attempt."""

OnRetry = Callable[[Exception, int], Awaitable[None] | None]
"""Told of each retry before its pause: the error and the number (1-based) of
the attempt that failed. May be sync or async."""

Sleep = Callable[[float], Awaitable[None]]


class RetryPolicy:
    """Runs a call up to `max_attempts` times, pausing by `backoff` between them.

    `base_delay` and `max_delay` are seconds; `jitter` is False/None, True or
    "full", "equal" or "decorrelated" (see `meshgate.resilience.backoff`).
    `budget`, when given, caps retries across every call that shares it.
    `sleep`, `random` and `clock` are for tests and simulations: the pause,
    the jitter source and the time the budget is told. `policy.backoff` holds
    the resulting `Backoff`.

    >>> policy = RetryPolicy(max_attempts=4, backoff="exponential", base_delay=0.5)
    >>> policy.delays()
    [0.5, 1.0, 2.0]
    >>> async def fetch(url: str) -> bytes: ...
    >>> async def main() -> bytes:
    ...     return await policy.execute(fetch, "http://users/1")
    """

    __slots__ = (
        "_budget",
        "_clock",
        "_on_retry",
        "_retry_predicate",
        "_sleep",
        "backoff",
        "max_attempts",
    )

    def __init__(
        self,
        max_attempts: int = 3,
        backoff: Strategy = "exponential",
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        jitter: JitterOption = False,
        retry_predicate: RetryPredicate | None = None,
        on_retry: OnRetry | None = None,
        *,
        budget: RetryBudget | None = None,
        sleep: Sleep = anyio.sleep,
        random: _random.Random | None = None,
        clock: Clock = monotonic,
    ) -> None:
        self.max_attempts = positive_int("max_attempts", max_attempts)
        # Checked here as well as in Backoff so the error names this option.
        one_of("backoff", backoff, STRATEGIES)
        self.backoff = Backoff(backoff, base_delay, max_delay, jitter, random=random)
        if retry_predicate is not None and not callable(retry_predicate):
            raise ValueError(
                f"retry_predicate={retry_predicate!r} is not allowed: expected a callable or None"
            )
        if on_retry is not None and not callable(on_retry):
            raise ValueError(f"on_retry={on_retry!r} is not allowed: expected a callable or None")
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ValueError(f"budget={budget!r} is not allowed: expected a RetryBudget or None")
        self._retry_predicate = retry_predicate
        self._on_retry = on_retry
        self._budget = budget
        self._sleep = sleep
        self._clock = clock

    def delays(self) -> list[float]:
        """The pauses a call that always fails would take, in order
        (`max_attempts - 1` of them). With jitter, each call draws afresh.

        >>> RetryPolicy(max_attempts=5, backoff="linear", base_delay=2.0, max_delay=5.0).delays()
        [2.0, 4.0, 5.0, 5.0]
        """
        return self.backoff.delays(self.max_attempts - 1)

    @overload
    async def execute(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    async def execute(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...

    async def execute(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, awaited if it returns an awaitable, retried on failure.

        >>> async def main(policy: RetryPolicy) -> int:
        ...     return await policy.execute(int, "42")
        """
        if self._budget is not None:
            self._budget.record_request(self._clock())
        attempt = 1
        delay: float | None = None
        while True:
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return result
            except Exception as error:
                if self._retry_predicate is not None and not self._retry_predicate(error):
                    raise
                if attempt >= self.max_attempts or (
                    self._budget is not None and not self._budget.try_retry(self._clock())
                ):
                    raise RetryExhaustedError(attempt, error) from error
                failure = error
            # Only a failure reaches here. The pause runs outside the `except`,
            # so a cancellation during it does not carry the old error along.
            delay = await self._pause(failure, attempt, delay)
            attempt += 1

    async def _pause(self, error: Exception, attempt: int, previous: float | None) -> float:
        """Tell `on_retry`, then sleep the backoff after failed attempt `attempt`."""
        if self._on_retry is not None:
            told = self._on_retry(error, attempt)
            if told is not None and inspect.isawaitable(told):
                await told
        delay = self.backoff.delay(attempt, previous)
        await self._sleep(delay)
        return delay

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts!r}, {self.backoff!r}, "
            f"budget={self._budget!r})"
        )
