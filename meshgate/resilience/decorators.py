"""Decorators that put guards around async functions and methods.

Stacked decorators run outermost first, as written from top to bottom::

    class PaymentService:
        @circuit_breaker(failure_threshold=3, reset_timeout=15.0)
        @retry(max_attempts=2, backoff="exponential", base_delay=0.5)
        @timeout(5.0)
        @bulkhead(max_concurrent=5, max_queue=10)
        async def process_payment(self, amount: int) -> str: ...

        @fallback("process_payment")
        async def process_payment_fallback(self, amount: int) -> str: ...

A call runs breaker → retry → timeout → bulkhead → method. When the guarded
call fails, or its circuit is open, the method marked with `fallback` answers
with the same arguments. On a plain function, `fallback` takes the function
that answers: ``@fallback(cached_price)`` above the guards.

Each decorated function owns its guards: every instance of a class shares
one breaker, one bulkhead and one limiter per method, like resilience4j's
named instances, and a decorator written once and put on two functions gives
each its own. Options are checked where the decorator is written, so a wrong
one fails at import. A breaker is named after the function's qualified name
(as its `CircuitOpenError` says); pass `name=` to `circuit_breaker` to share
a breaker of `CircuitBreakerRegistry` instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from meshgate.resilience.bulkhead import Bulkhead
from meshgate.resilience.circuit_breaker import CircuitBreaker, CircuitBreakerRegistry
from meshgate.resilience.rate_limiter import RateLimiter
from meshgate.resilience.retry import RetryPolicy
from meshgate.resilience.timeout import Timeout

P = ParamSpec("P")
R = TypeVar("R")

Execute = Callable[..., Awaitable[Any]]
"""A guard's `execute(fn, *args, **kwargs)`."""

_LAYER = "__meshgate_guard_layer__"
_FALLBACK_FOR = "__meshgate_fallback_for__"


class _Layer:
    """What a guard wrapper knows of its place in a stack. Only the outermost
    layer answers with the fallback, so it answers once for the whole stack."""

    __slots__ = ("fallback", "is_outermost", "method_name")

    def __init__(self, method_name: str) -> None:
        self.is_outermost = True
        self.method_name = method_name
        self.fallback: Callable[..., Any] | None = None


def _method_fallback(layer: _Layer, args: tuple[Any, ...]) -> Callable[..., Any] | None:
    """The bound method of `args[0]` marked `@fallback(layer.method_name)`, if
    the guarded stack is a method of `args[0]`'s class at all: a plain function
    whose first argument happens to have such a method has no fallback of it."""
    if not args:
        return None
    mro = type(args[0]).__mro__
    name = layer.method_name
    if not any(getattr(vars(klass).get(name), _LAYER, None) is layer for klass in mro):
        return None
    for klass in mro:
        for attribute, value in vars(klass).items():
            if getattr(value, _FALLBACK_FOR, None) == name:
                bound: Callable[..., Any] = getattr(args[0], attribute)
                return bound
    return None


async def _answer(
    fallback: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    result = fallback(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def _guard(
    build: Callable[[Callable[..., Any]], Execute],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """A decorator that wraps a function in the guard `build(fn)` makes for it."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"{fn.__qualname__} must be async to take a resilience guard")
        execute = build(fn)
        inner: _Layer | None = getattr(fn, _LAYER, None)
        if inner is not None:
            inner.is_outermost = False
        layer = _Layer(inner.method_name if inner is not None else fn.__name__)
        if inner is not None:
            layer.fallback = inner.fallback

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            if not layer.is_outermost:
                result: R = await execute(fn, *args, **kwargs)
                return result
            try:
                result = await execute(fn, *args, **kwargs)
                return result
            except Exception:
                if layer.fallback is not None:
                    answered: R = await _answer(layer.fallback, args, kwargs)
                    return answered
                method = _method_fallback(layer, args)
                if method is None:
                    raise
                answered = await _answer(method, args[1:], kwargs)
                return answered

        setattr(guarded, _LAYER, layer)
        return guarded

    return decorate


def circuit_breaker(
    *, name: str | None = None, **options: Any
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Guard with a `CircuitBreaker(**options)` of its own, named after the
    function; with `name`, the registry's breaker of that name.

    >>> @circuit_breaker(failure_threshold=3, reset_timeout=15.0)
    ... async def charge(amount: int) -> str:
    ...     return "charged"
    """
    if name is not None:
        shared = CircuitBreakerRegistry.get_or_create(name, **options)
        return _guard(lambda fn: shared.execute)
    CircuitBreaker(**options)  # checks the options here, where they are written
    return _guard(lambda fn: CircuitBreaker(name=fn.__qualname__, **options).execute)


def retry(
    **options: Any,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Guard with a `RetryPolicy(**options)`.

    >>> @retry(max_attempts=3, backoff="exponential", base_delay=0.5)
    ... async def fetch() -> bytes:
    ...     return b""
    """
    RetryPolicy(**options)  # checks the options here, where they are written
    return _guard(lambda fn: RetryPolicy(**options).execute)


def timeout(
    seconds: float, message: str | None = None
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Cancel the call after `seconds` and raise `TimeoutExceededError`.

    >>> @timeout(5.0)
    ... async def query() -> list[str]:
    ...     return []
    """
    limit = Timeout(seconds, message)  # holds no state, so functions may share it
    return _guard(lambda fn: limit.execute)


def bulkhead(
    **options: Any,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Guard with a `Bulkhead(**options)`.

    >>> @bulkhead(max_concurrent=5, max_queue=10)
    ... async def render() -> str:
    ...     return ""
    """
    Bulkhead(**options)  # checks the options here, where they are written
    return _guard(lambda fn: Bulkhead(**options).execute)


def rate_limit(
    **options: Any,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Guard with a `RateLimiter(**options)`; over the limit raises `RateLimitExceededError`.

    >>> @rate_limit(strategy="token-bucket", max=100, window=60.0)
    ... async def search() -> list[str]:
    ...     return []
    """
    RateLimiter(**options)  # checks the options here, where they are written
    return _guard(lambda fn: RateLimiter(**options).execute)


def fallback(target: str | Callable[..., Any]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a method as the answer when method `target` fails or its circuit is open;
    on a plain function, `target` is the function that answers.

    >>> class Prices:
    ...     @circuit_breaker(failure_threshold=3)
    ...     async def price(self, sku: str) -> int:
    ...         raise ConnectionError("pricing down")
    ...     @fallback("price")
    ...     async def cached_price(self, sku: str) -> int:
    ...         return 100
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if isinstance(target, str):
            setattr(fn, _FALLBACK_FOR, target)
            return fn
        layer: _Layer | None = getattr(fn, _LAYER, None)
        if layer is None:
            raise TypeError(
                f"@fallback({getattr(target, '__name__', target)!r}) on a function goes above "
                f"its guards, but {getattr(fn, '__qualname__', fn)!r} has none"
            )
        layer.fallback = target
        return fn

    return decorate
