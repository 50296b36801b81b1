"""Time limits: cancel a call that runs too long and raise `TimeoutExceededError`.

The call runs inside an anyio cancel scope (`anyio.fail_after`), so it is
really cancelled at its next checkpoint, not merely abandoned. Only the
expiry of this limit becomes `TimeoutExceededError`: a `TimeoutError` the
call raises itself (an inner limit, a socket timeout) passes through as it
is, and a cancellation from an enclosing scope stays a cancellation.

Only async callables are accepted: a sync call cannot be interrupted, so a
limit on it would promise what it cannot keep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio

from meshgate.resilience.errors import TimeoutExceededError
from meshgate.resilience.validation import positive_number

P = ParamSpec("P")
T = TypeVar("T")


async def with_timeout(
    fn: Callable[P, Awaitable[T]],
    seconds: float,
    /,
    message: str | None = None,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`await fn(*args, **kwargs)`, cancelled after `seconds` with `TimeoutExceededError`.

    `message` replaces the error's default text. Arguments after it go to `fn`
    (a keyword argument named `message` cannot; bind it with `functools.partial`).

    >>> async def query() -> list[str]:
    ...     return []
    >>> async def main() -> list[str]:
    ...     return await with_timeout(query, 5.0, "database query exceeded 5s")
    """
    positive_number("seconds", seconds)
    return await _run_with_limit(seconds, message, fn, *args, **kwargs)


class Timeout:
    """A reusable time limit with the same `execute` as the other guards.

    >>> limit = Timeout(2.5, "pricing took longer than 2.5s")
    >>> async def price(sku: str) -> int:
    ...     return 100
    >>> async def main() -> int:
    ...     return await limit.execute(price, "sku-1")
    """

    __slots__ = ("message", "seconds")

    def __init__(self, seconds: float, message: str | None = None) -> None:
        self.seconds = positive_number("seconds", seconds)
        if message is not None and not isinstance(message, str):
            raise ValueError(f"message={message!r} is not allowed: expected a string or None")
        self.message = message

    async def execute(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`await fn(*args, **kwargs)`, cancelled after `seconds` with `TimeoutExceededError`."""
        return await _run_with_limit(self.seconds, self.message, fn, *args, **kwargs)

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r}, message={self.message!r})"


async def _run_with_limit(
    seconds: float,
    message: str | None,
    fn: Callable[P, Awaitable[T]],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    try:
        with anyio.fail_after(seconds) as scope:
            return await fn(*args, **kwargs)
    except TimeoutError as error:
        # fail_after raises TimeoutError only when its own scope caught the
        # cancellation; any other TimeoutError came from inside the call.
        if not scope.cancelled_caught:
            raise
        raise TimeoutExceededError(seconds, message) from error
