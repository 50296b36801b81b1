"""The circuit breaker that guards calls, and the registry of named breakers.

`CircuitBreaker` is a thin async shell around `BreakerCore`, which holds the
whole state machine and its rules: read the clock, ask `allow`, make the call,
report how it went. Everything it decides, the core decides.

Replicas of the gateway share breaker state: `export_state()` gives a
`BreakerSnapshot` to publish, and `adopt(snapshot)` takes a peer's, so that a
breaker opened by one replica rejects calls on every replica until the same
wall-clock deadline.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from inspect import isawaitable
from types import CoroutineType
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, overload

import anyio

from meshgate.resilience.breaker_core import (
    REJECT,
    BreakerConfig,
    BreakerCore,
    BreakerMetrics,
    BreakerSnapshot,
    CircuitState,
    Decision,
    Listener,
)
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.errors import CircuitOpenError, TimeoutExceededError
from meshgate.resilience.sliding_window import WindowSpec, window_spec
from meshgate.resilience.validation import positive_number

__all__ = [
    "BreakerConfig",
    "BreakerMetrics",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitState",
    "Decision",
    "FailurePredicate",
    "WindowSpec",
]

P = ParamSpec("P")
R = TypeVar("R")

FailurePredicate = Callable[[Exception], bool]
"""Whether an exception raised by the guarded call counts as a failure."""


async def _answer(
    fallback: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    answer = fallback(*args, **kwargs)
    if isawaitable(answer):
        answer = await answer
    return answer


def _callable_or_none(option: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ValueError(f"{option}={value!r} is not allowed: expected a callable or None")


class CircuitBreaker:
    """Stops calling a service that keeps failing, and tries it again later.

    CLOSED lets calls through and counts failures in a sliding window; enough
    of them (see `BreakerConfig`) open it. OPEN rejects calls at once with
    `CircuitOpenError` until `reset_timeout` has passed; then HALF_OPEN lets
    `permitted_calls_in_half_open` probes through at a time, and
    `success_threshold` successful probes close it while one failure opens it
    again (for longer, with `open_backoff_multiplier` > 1).

    `timeout` cancels a call after that many seconds and counts it as a
    failure (`TimeoutExceededError`). `failure_predicate(error)` decides whether
    an exception counts: one that does not is recorded as a success (the
    service answered) and still propagates. `on_state_change(from, to)` hears
    every transition. `fallback`, sync or async, answers with the call's
    arguments when a counted failure, a timeout or an open circuit would
    otherwise raise.

    A sync `fn` is called in the event loop's thread, so it cannot be cut short
    by `timeout`; only what it returns to be awaited can.

    >>> breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0, name="payment")
    >>> async def charge(amount: int) -> str:
    ...     return f"charged {amount}"
    >>> anyio.run(breaker.execute, charge, 100)
    'charged 100'
    >>> breaker.state
    <CircuitState.CLOSED: 'closed'>
    """

    __slots__ = (
        "_clock",
        "_core",
        "_failure_predicate",
        "_fallback",
        "_timeout",
        "_wall_clock",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        success_threshold: int = 1,
        reset_timeout: float = 30.0,
        timeout: float | None = None,
        sliding_window: Mapping[str, Any] | WindowSpec | None = None,
        failure_predicate: FailurePredicate | None = None,
        on_state_change: Listener | None = None,
        fallback: Callable[..., Any] | None = None,
        *,
        name: str = "unnamed",
        minimum_calls: int | None = None,
        failure_rate_threshold: float | None = None,
        slow_call_threshold: float | None = None,
        slow_call_duration: float | None = None,
        permitted_calls_in_half_open: int | None = None,
        open_backoff_multiplier: float = 1.0,
        max_reset_timeout: float | None = None,
        clock: Clock = monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        config = BreakerConfig(
            name=name,
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
            reset_timeout=reset_timeout,
            sliding_window=None if sliding_window is None else window_spec(sliding_window),
            minimum_calls=minimum_calls,
            failure_rate_threshold=failure_rate_threshold,
            slow_call_threshold=slow_call_threshold,
            slow_call_duration=slow_call_duration,
            permitted_calls_in_half_open=permitted_calls_in_half_open,
            open_backoff_multiplier=open_backoff_multiplier,
            max_reset_timeout=max_reset_timeout,
        )
        if timeout is not None:
            timeout = positive_number("timeout", timeout)
        _callable_or_none("failure_predicate", failure_predicate)
        _callable_or_none("on_state_change", on_state_change)
        _callable_or_none("fallback", fallback)
        _callable_or_none("clock", clock)
        _callable_or_none("wall_clock", wall_clock)
        self._core = BreakerCore(config, on_state_change)
        self._timeout = timeout
        self._failure_predicate = failure_predicate
        self._fallback = fallback
        self._clock = clock
        self._wall_clock = wall_clock

    @overload
    async def execute(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...

    @overload
    async def execute(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    async def execute(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """`await fn(*args, **kwargs)` if the circuit lets it through.

        Raises `CircuitOpenError` without calling `fn` when the circuit is open
        (or every half-open probe slot is taken), unless `fallback` answers.

        >>> async def main() -> None:
        ...     breaker = CircuitBreaker(name="search")
        ...     print(await breaker.execute(sorted, [3, 1, 2]))
        >>> anyio.run(main)
        [1, 2, 3]
        """
        core = self._core
        # While the core ignores times (`BreakerCore.needs_time`), a call that
        # succeeds costs no clock reads: the clock is the hot path's dearest part.
        needs_time = core.needs_time
        start = self._clock() if needs_time else 0.0
        if core.allow(start) is REJECT:
            return await self._rejected(args, kwargs)
        epoch = core.epoch
        timeout = self._timeout
        timed_out: float | None = None
        try:
            if timeout is None:
                result = fn(*args, **kwargs)
                # The exact type check first: it is the common case, and
                # cheaper than `isawaitable`'s protocol test.
                if type(result) is CoroutineType or isawaitable(result):
                    result = await result
            else:
                # Only a timed call pays for a cancel scope.
                with anyio.move_on_after(timeout) as scope:
                    result = fn(*args, **kwargs)
                    if isawaitable(result):
                        result = await result
                if scope.cancelled_caught:
                    timed_out = timeout
        except Exception as error:
            counted = self._record_error(error, start if needs_time else None, epoch)
            if not counted or self._fallback is None:
                raise
            return await _answer(self._fallback, args, kwargs)
        except BaseException:
            # Cancelled from outside, or the process is stopping: the service
            # said nothing, so nothing is counted.
            core.release(epoch)
            raise
        if timed_out is not None:
            now = self._clock()
            core.on_failure(now - start if needs_time else 0.0, now, epoch)
            if self._fallback is None:
                raise TimeoutExceededError(timed_out)
            return await _answer(self._fallback, args, kwargs)
        if needs_time:
            now = self._clock()
            core.on_success(now - start, now, epoch)
        else:
            core.on_success(0.0, 0.0, epoch)
        return result

    async def _rejected(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._fallback is None:
            raise CircuitOpenError(self.name, self._core.retry_after(self._clock()))
        return await _answer(self._fallback, args, kwargs)

    def _record_error(self, error: Exception, start: float | None, epoch: int) -> bool:
        """Report a raised call to the core; True if it counted as a failure.
        `start` is None when the call's duration does not matter."""
        now = self._clock()
        duration = 0.0 if start is None else now - start
        predicate = self._failure_predicate
        try:
            counts = predicate is None or bool(predicate(error))
        except BaseException:
            self._core.release(epoch)
            raise
        if counts:
            self._core.on_failure(duration, now, epoch)
        else:
            self._core.on_success(duration, now, epoch)
        return counts

    # -- reading -------------------------------------------------------------

    @property
    def name(self) -> str:
        """The breaker's name, as in its errors, snapshots and registry."""
        return self._core.config.name

    @property
    def state(self) -> CircuitState:
        """The state now; an OPEN breaker whose reset timeout has passed reads HALF_OPEN."""
        return self._core.tick(self._clock())

    @property
    def metrics(self) -> BreakerMetrics:
        """The state, the sliding window's totals and rates, and rejected calls so far."""
        return self._core.metrics(self._clock())

    @property
    def config(self) -> BreakerConfig:
        """The checked options of the state machine."""
        return self._core.config

    @property
    def timeout(self) -> float | None:
        """Seconds a call may take before it is cancelled, or None."""
        return self._timeout

    # -- sharing -------------------------------------------------------------

    def export_state(self) -> BreakerSnapshot:
        """The state to share with peers; its reset deadline is on the wall clock.

        An OPEN breaker whose deadline has passed but has seen no call since is
        exported as OPEN with that past deadline: a peer that adopts it lets a
        probe through at once.

        >>> breaker = CircuitBreaker(name="payment")
        >>> breaker.force_open()
        >>> breaker.export_state().state
        <CircuitState.FORCED_OPEN: 'forced-open'>
        """
        return self._core.snapshot(self._clock(), self._wall_clock())

    def adopt(self, snapshot: BreakerSnapshot) -> bool:
        """Take a peer's state if it is newer than ours; True if taken.

        A snapshot is newer when its generation is higher, or equal with a more
        restrictive state; an older or equal one is ignored, so snapshots may
        arrive late, twice or out of order.

        >>> ours, theirs = CircuitBreaker(name="payment"), CircuitBreaker(name="payment")
        >>> theirs.force_open()
        >>> ours.adopt(theirs.export_state()), ours.state
        (True, <CircuitState.FORCED_OPEN: 'forced-open'>)
        """
        return self._core.adopt(snapshot, self._clock(), self._wall_clock())

    # -- operators -----------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until `reset()` or `disable()`."""
        self._core.force_open()

    def disable(self) -> None:
        """Let every call through and count nothing until `reset()` or `force_open()`."""
        self._core.disable()

    def reset(self) -> None:
        """Back to CLOSED, with an empty window and the base reset timeout."""
        self._core.reset()

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._core.state.value}>"


class _OnDefaultOrInstance(Generic[P, R]):
    """A registry method that, looked up on the class, acts on the default registry."""

    def __init__(self, method: Callable[Concatenate[CircuitBreakerRegistry, P], R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    def __get__(
        self, registry: CircuitBreakerRegistry | None, owner: type[CircuitBreakerRegistry]
    ) -> Callable[P, R]:
        return functools.partial(self._method, owner.default if registry is None else registry)


class CircuitBreakerRegistry:
    """Named breakers, created on first use and shared after that.

    Called on the class, the methods act on the process-wide default registry;
    an instance is a registry of its own (for a test, or one per gateway).

    >>> payment = CircuitBreakerRegistry.get_or_create("payment", failure_threshold=3)
    >>> CircuitBreakerRegistry.get_or_create("payment") is payment
    True
    >>> registry = CircuitBreakerRegistry()
    >>> registry.get("payment") is None
    True
    >>> CircuitBreakerRegistry.remove("payment") is payment
    True
    """

    default: ClassVar[CircuitBreakerRegistry]
    """The registry that class-level calls use."""

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}

    @_OnDefaultOrInstance
    def get_or_create(self, /, name: str, **options: Any) -> CircuitBreaker:
        """The breaker called `name`, made with `options` if there is none yet.

        As in resilience4j's registry, `options` apply only when the breaker is
        made: a later call with other options gets the existing breaker.
        """
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = CircuitBreaker(name=name, **options)
        return breaker

    @_OnDefaultOrInstance
    def get(self, name: str) -> CircuitBreaker | None:
        """The breaker called `name`, or None."""
        return self._breakers.get(name)

    @_OnDefaultOrInstance
    def remove(self, name: str) -> CircuitBreaker | None:
        """Forget the breaker called `name`; return it, or None if there was none."""
        return self._breakers.pop(name, None)

    @_OnDefaultOrInstance
    def all(self) -> list[CircuitBreaker]:
        """Every breaker, in the order they were made."""
        return list(self._breakers.values())

    @_OnDefaultOrInstance
    def clear(self) -> None:
        """Forget every breaker."""
        self._breakers.clear()

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __repr__(self) -> str:
        return f"<CircuitBreakerRegistry {sorted(self._breakers)}>"


CircuitBreakerRegistry.default = CircuitBreakerRegistry()
