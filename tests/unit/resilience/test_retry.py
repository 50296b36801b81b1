"""RetryPolicy under both backends. Pauses go to a recording `sleep`, so no test
waits and every delay is checked exactly."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

from meshgate.resilience.backoff import Backoff
from meshgate.resilience.clock import ManualClock
from meshgate.resilience.errors import CircuitOpenError, ResilienceError, RetryExhaustedError
from meshgate.resilience.retry import RetryPolicy
from meshgate.resilience.retry_budget import RetryBudget

pytestmark = pytest.mark.anyio


class RecordingSleep:
    """Stands in for `anyio.sleep`: remembers each requested delay and only checkpoints."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await anyio.lowlevel.checkpoint()


class Flaky:
    """Fails with the given errors in turn, then answers `result`."""

    def __init__(self, *errors: BaseException, result: str = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        if self.errors:
            raise self.errors.pop(0)
        return self.result


async def test_a_call_that_succeeds_runs_once_without_pausing() -> None:
    sleep = RecordingSleep()
    told: list[tuple[Exception, int]] = []
    policy = RetryPolicy(sleep=sleep, on_retry=lambda error, attempt: told.append((error, attempt)))
    call = Flaky()
    assert await policy.execute(call) == "ok"
    assert (call.calls, sleep.delays, told) == (1, [], [])


async def test_arguments_reach_the_call_and_a_sync_call_is_accepted() -> None:
    policy = RetryPolicy(sleep=RecordingSleep())

    def describe(name: str, *, age: int) -> str:
        return f"{name} is {age}"

    assert await policy.execute(describe, "ada", age=36) == "ada is 36"


async def test_a_failing_call_is_retried_after_exponential_pauses() -> None:
    sleep = RecordingSleep()
    policy = RetryPolicy(max_attempts=4, backoff="exponential", base_delay=0.5, sleep=sleep)
    call = Flaky(ConnectionError("reset"), ConnectionError("reset"), result="third time")
    assert await policy.execute(call) == "third time"
    assert call.calls == 3
    assert sleep.delays == [0.5, 1.0]


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [("fixed", [2.0, 2.0, 2.0]), ("linear", [2.0, 4.0, 5.0]), ("exponential", [2.0, 4.0, 5.0])],
)
async def test_pauses_follow_the_backoff_strategy_up_to_max_delay(
    backoff: str, delays: list[float]
) -> None:
    sleep = RecordingSleep()
    policy = RetryPolicy(4, backoff, 2.0, 5.0, sleep=sleep)  # type: ignore[arg-type]
    with pytest.raises(RetryExhaustedError):
        await policy.execute(Flaky(*[OSError()] * 4))
    assert sleep.delays == delays


async def test_on_retry_hears_each_error_with_the_number_of_the_attempt_that_failed() -> None:
    first, second = TimeoutError("slow"), ConnectionError("reset")
    told: list[tuple[Exception, int]] = []
    policy = RetryPolicy(
        on_retry=lambda error, attempt: told.append((error, attempt)), sleep=RecordingSleep()
    )
    await policy.execute(Flaky(first, second))
    assert told == [(first, 1), (second, 2)]


async def test_an_async_on_retry_is_awaited_before_the_pause() -> None:
    order: list[str] = []

    async def on_retry(error: Exception, attempt: int) -> None:
        await anyio.lowlevel.checkpoint()
        order.append(f"told {attempt}")

    async def sleep(delay: float) -> None:
        order.append(f"slept {delay}")

    policy = RetryPolicy(base_delay=1.0, on_retry=on_retry, sleep=sleep)
    await policy.execute(Flaky(OSError()))
    assert order == ["told 1", "slept 1.0"]


async def test_when_attempts_run_out_the_last_error_is_wrapped_and_chained() -> None:
    sleep = RecordingSleep()
    last = ConnectionError("third")
    call = Flaky(ConnectionError("first"), ConnectionError("second"), last)
    with pytest.raises(RetryExhaustedError) as raised:
        await RetryPolicy(max_attempts=3, sleep=sleep).execute(call)
    assert raised.value.attempts == 3
    assert raised.value.last_error is last
    assert raised.value.__cause__ is last
    assert call.calls == 3
    assert len(sleep.delays) == 2


async def test_a_single_attempt_policy_never_pauses() -> None:
    sleep = RecordingSleep()
    with pytest.raises(RetryExhaustedError) as raised:
        await RetryPolicy(max_attempts=1, sleep=sleep).execute(Flaky(OSError()))
    assert raised.value.attempts == 1
    assert sleep.delays == []


async def test_an_error_the_predicate_refuses_is_raised_as_it_is_at_once() -> None:
    sleep = RecordingSleep()
    refused = ValueError("bad request")
    call = Flaky(refused)
    policy = RetryPolicy(
        retry_predicate=lambda error: not isinstance(error, ValueError), sleep=sleep
    )
    with pytest.raises(ValueError, match="bad request") as raised:
        await policy.execute(call)
    assert raised.value is refused
    assert (call.calls, sleep.delays) == (1, [])


async def test_the_predicate_is_asked_about_every_failure() -> None:
    asked: list[Exception] = []
    transient, fatal = ConnectionError("reset"), PermissionError("denied")

    def is_transient(error: Exception) -> bool:
        asked.append(error)
        return isinstance(error, ConnectionError)

    call = Flaky(transient, fatal)
    with pytest.raises(PermissionError):
        await RetryPolicy(5, retry_predicate=is_transient, sleep=RecordingSleep()).execute(call)
    assert asked == [transient, fatal]
    assert call.calls == 2


async def test_circuit_open_errors_are_retried_by_default() -> None:
    call = Flaky(CircuitOpenError("users", retry_after=1.0))
    assert await RetryPolicy(sleep=RecordingSleep()).execute(call) == "ok"
    assert call.calls == 2


async def test_a_predicate_can_keep_resilience_errors_from_being_retried() -> None:
    call = Flaky(CircuitOpenError("users", retry_after=1.0))
    policy = RetryPolicy(
        retry_predicate=lambda error: not isinstance(error, ResilienceError), sleep=RecordingSleep()
    )
    with pytest.raises(CircuitOpenError):
        await policy.execute(call)
    assert call.calls == 1


async def test_cancellation_inside_the_call_is_not_retried() -> None:
    sleep = RecordingSleep()
    calls = 0
    with anyio.CancelScope() as scope:

        async def cancelled() -> None:
            nonlocal calls
            calls += 1
            scope.cancel()
            await anyio.lowlevel.checkpoint()

        await RetryPolicy(max_attempts=5, sleep=sleep).execute(cancelled)
    assert scope.cancelled_caught
    assert (calls, sleep.delays) == (1, [])


async def test_cancellation_during_a_pause_ends_the_retries() -> None:
    call = Flaky(*[OSError()] * 5)
    with anyio.CancelScope() as scope:

        async def cancelling_sleep(delay: float) -> None:
            scope.cancel()
            await anyio.lowlevel.checkpoint()

        await RetryPolicy(max_attempts=5, sleep=cancelling_sleep).execute(call)
    assert scope.cancelled_caught
    assert call.calls == 1


async def test_a_real_pause_is_cancelled_by_an_enclosing_deadline() -> None:
    call = Flaky(*[OSError()] * 5)
    with anyio.move_on_after(0.05) as scope:
        await RetryPolicy(max_attempts=5, base_delay=10.0).execute(call)
    assert scope.cancelled_caught
    assert call.calls == 1


class Abort(BaseException):
    """A BaseException that is not cancellation, like KeyboardInterrupt."""


async def test_base_exceptions_pass_through_without_a_retry() -> None:
    call = Flaky(Abort())
    with pytest.raises(Abort):
        await RetryPolicy(sleep=RecordingSleep()).execute(call)
    assert call.calls == 1


async def test_an_exhausted_budget_ends_the_call_after_the_attempts_it_made() -> None:
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.1, window=10.0)  # one retry
    policy = RetryPolicy(max_attempts=5, budget=budget, clock=ManualClock(), sleep=RecordingSleep())
    first = Flaky(*[OSError()] * 5)
    with pytest.raises(RetryExhaustedError) as raised:
        await policy.execute(first)
    assert (raised.value.attempts, first.calls) == (2, 2)
    second = Flaky(OSError())
    with pytest.raises(RetryExhaustedError) as raised:
        await policy.execute(second)
    assert (raised.value.attempts, second.calls) == (1, 1)


async def test_each_call_earns_budget_at_the_time_the_clock_tells() -> None:
    clock = ManualClock(100.0)
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0, window=10.0)
    policy = RetryPolicy(max_attempts=3, budget=budget, clock=clock, sleep=RecordingSleep())
    await policy.execute(Flaky())
    await policy.execute(Flaky())
    assert budget.balance(now=100.0) == 1.0
    assert await policy.execute(Flaky(OSError())) == "ok"
    assert budget.balance(now=100.0) == 0.5
    clock.advance(10.0)  # every request and retry above has left the window
    with pytest.raises(RetryExhaustedError) as raised:
        await policy.execute(Flaky(OSError()))
    assert raised.value.attempts == 1


async def test_jittered_pauses_come_from_the_injected_random_source() -> None:
    sleep = RecordingSleep()
    policy = RetryPolicy(
        4, "exponential", 1.0, 20.0, "decorrelated", sleep=sleep, random=random.Random(11)
    )
    with pytest.raises(RetryExhaustedError):
        await policy.execute(Flaky(*[OSError()] * 4))
    replay = Backoff("exponential", 1.0, 20.0, "decorrelated", random=random.Random(11))
    assert sleep.delays == replay.delays(3)


def test_delays_preview_the_pauses_between_all_attempts() -> None:
    assert RetryPolicy(max_attempts=5, backoff="linear", base_delay=1.0).delays() == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]
    assert RetryPolicy(max_attempts=1).delays() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, r"max_attempts=0 is not allowed: expected an integer >= 1"),
        ({"max_attempts": 2.5}, r"max_attempts=2.5 is not allowed"),
        ({"backoff": "quadratic"}, r"backoff='quadratic' is not allowed: expected one of 'fixed'"),
        ({"base_delay": -1}, r"base_delay=-1 is not allowed"),
        ({"base_delay": 5.0, "max_delay": 1.0}, r"max_delay=1.0 is not allowed"),
        ({"jitter": "sometimes"}, r"jitter='sometimes' is not allowed"),
        ({"retry_predicate": True}, r"retry_predicate=True is not allowed: expected a callable"),
        ({"on_retry": "log"}, r"on_retry='log' is not allowed: expected a callable"),
        ({"budget": 0.2}, r"budget=0.2 is not allowed: expected a RetryBudget"),
    ],
)
def test_options_are_checked_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
