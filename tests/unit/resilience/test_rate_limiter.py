"""RateLimiter: a clock around the permit cores, refusing or waiting."""

from __future__ import annotations

import time

import anyio
import pytest

from meshgate.resilience.clock import ManualClock
from meshgate.resilience.errors import RateLimitExceededError, ResilienceError
from meshgate.resilience.rate_limiter import RateLimiter


def test_token_bucket_admits_a_burst_of_max_then_refills_max_per_window() -> None:
    clock = ManualClock()
    limiter = RateLimiter("token-bucket", max=10, window=60.0, clock=clock)
    assert [limiter.try_acquire() for _ in range(11)] == [True] * 10 + [False]
    clock.advance(6.0)  # 10 per 60 s is one every 6 s
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


def test_sliding_window_admits_max_in_any_window() -> None:
    clock = ManualClock()
    limiter = RateLimiter("sliding-window", max=2, window=10.0, clock=clock)
    assert limiter.try_acquire()
    clock.advance(5.0)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(5.0)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


def test_the_default_is_a_token_bucket_of_100_per_minute() -> None:
    limiter = RateLimiter(clock=ManualClock())
    assert (limiter.strategy, limiter.max, limiter.window) == ("token-bucket", 100, 60.0)
    assert limiter.available_permits() == 100


@pytest.mark.parametrize("strategy", ["token-bucket", "sliding-window"])
def test_time_until_next_permit_reports_the_wait(strategy: str) -> None:
    clock = ManualClock()
    limiter = RateLimiter(strategy, max=1, window=4.0, clock=clock)  # type: ignore[arg-type]
    assert limiter.time_until_next_permit() == 0.0
    assert limiter.try_acquire()
    clock.advance(1.0)
    assert limiter.time_until_next_permit() == 3.0


@pytest.mark.parametrize("strategy", ["token-bucket", "sliding-window"])
def test_available_permits_counts_whole_permits(strategy: str) -> None:
    clock = ManualClock()
    limiter = RateLimiter(strategy, max=4, window=4.0, clock=clock)  # type: ignore[arg-type]
    limiter.try_acquire()
    limiter.try_acquire()
    assert limiter.available_permits() == 2
    clock.advance(0.5)
    assert limiter.available_permits() == 2


@pytest.mark.anyio
async def test_execute_calls_with_the_arguments_and_returns_the_result() -> None:
    limiter = RateLimiter(max=5, window=1.0, clock=ManualClock())

    async def greet(name: str, *, punctuation: str) -> str:
        return f"hello {name}{punctuation}"

    assert await limiter.execute(greet, "ada", punctuation="!") == "hello ada!"
    assert limiter.available_permits() == 4


@pytest.mark.anyio
async def test_execute_over_the_limit_raises_with_retry_after_and_does_not_call() -> None:
    clock = ManualClock()
    limiter = RateLimiter(max=1, window=30.0, clock=clock)
    calls: list[int] = []

    async def record() -> None:
        calls.append(1)

    await limiter.execute(record)
    clock.advance(10.0)
    with pytest.raises(RateLimitExceededError) as raised:
        await limiter.execute(record)
    assert raised.value.retry_after == 20.0
    assert isinstance(raised.value, ResilienceError)
    assert calls == [1]


@pytest.mark.anyio
async def test_execute_lets_the_callee_error_through() -> None:
    limiter = RateLimiter(max=1, window=1.0, clock=ManualClock())

    async def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await limiter.execute(fail)


@pytest.mark.anyio
async def test_acquire_returns_at_once_while_permits_remain() -> None:
    limiter = RateLimiter(max=2, window=3600.0)
    with anyio.fail_after(1.0):
        await limiter.acquire()
        await limiter.acquire(max_wait=0)
    assert limiter.available_permits() == 0


@pytest.mark.anyio
async def test_acquire_refuses_at_once_when_the_permit_is_further_off_than_max_wait() -> None:
    limiter = RateLimiter(max=1, window=3600.0)
    assert limiter.try_acquire()
    with anyio.fail_after(1.0), pytest.raises(RateLimitExceededError) as raised:
        await limiter.acquire(max_wait=0.01)
    assert raised.value.retry_after > 3500.0
    # the refusal booked nothing: the wait is unchanged
    assert limiter.time_until_next_permit() > 3500.0
    assert limiter.time_until_next_permit() <= raised.value.retry_after


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", ["token-bucket", "sliding-window"])
async def test_acquire_waits_for_the_next_permit(strategy: str) -> None:
    limiter = RateLimiter(strategy, max=1, window=0.05)  # type: ignore[arg-type]
    await limiter.acquire()
    started = time.monotonic()
    with anyio.fail_after(1.0):
        await limiter.acquire(max_wait=1.0)
    assert time.monotonic() - started >= 0.04


@pytest.mark.anyio
async def test_waiting_acquires_are_served_in_arrival_order() -> None:
    limiter = RateLimiter(max=1, window=0.02)
    limiter.try_acquire()
    arrived: list[int] = []
    served: list[int] = []

    async def wait_then_note(n: int) -> None:
        arrived.append(n)  # trio starts tasks in no promised order
        await limiter.acquire()
        served.append(n)

    with anyio.fail_after(1.0):
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(wait_then_note, n)
    assert served == arrived
    assert len(served) == 3


def test_reconfigure_changes_max_and_window_and_keeps_what_was_taken() -> None:
    clock = ManualClock()
    limiter = RateLimiter(max=10, window=10.0, clock=clock)
    for _ in range(8):
        assert limiter.try_acquire()
    limiter.reconfigure(max=4)
    assert (limiter.max, limiter.window) == (4, 10.0)
    assert limiter.available_permits() == 2
    limiter.reconfigure(max=4, window=2.0)
    clock.advance(1.0)
    assert limiter.available_permits() == 4


def test_reconfigure_a_sliding_window() -> None:
    clock = ManualClock()
    limiter = RateLimiter("sliding-window", max=1, window=10.0, clock=clock)
    assert limiter.try_acquire()
    limiter.reconfigure(max=2)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "leaky"}, "strategy='leaky'.*'token-bucket', 'sliding-window'"),
        ({"max": 0}, "max=0"),
        ({"max": 1.5}, "max=1.5"),
        ({"window": 0}, "window=0"),
        ({"window": "60s"}, "window='60s'"),
    ],
)
def test_options_are_checked_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter(**options)  # type: ignore[arg-type]


def test_reconfigure_checks_its_options() -> None:
    limiter = RateLimiter(max=10, window=1.0)
    with pytest.raises(ValueError, match="window=-1"):
        limiter.reconfigure(max=10, window=-1)
    assert (limiter.max, limiter.window) == (10, 1.0)


@pytest.mark.anyio
async def test_acquire_checks_max_wait() -> None:
    limiter = RateLimiter(max=10, window=1.0)
    with pytest.raises(ValueError, match="max_wait=-1"):
        await limiter.acquire(max_wait=-1)
