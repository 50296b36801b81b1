"""with_timeout and Timeout under both backends, with real short deadlines:
the call sleeps for 10 s and the limit is 0.05 s, so each test ends quickly."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from meshgate.resilience.errors import TimeoutExceededError
from meshgate.resilience.timeout import Timeout, with_timeout

pytestmark = pytest.mark.anyio


class Sleeper:
    """Sleeps for `seconds`, noting whether it was cancelled."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self.was_cancelled = False

    async def __call__(self) -> str:
        try:
            await anyio.sleep(self.seconds)
        except anyio.get_cancelled_exc_class():
            self.was_cancelled = True
            raise
        return "awake"


async def test_a_call_within_the_limit_returns_its_result() -> None:
    async def greet(name: str, *, punctuation: str) -> str:
        await anyio.lowlevel.checkpoint()
        return f"hello {name}{punctuation}"

    assert await with_timeout(greet, 1.0, None, "ada", punctuation="!") == "hello ada!"


async def test_a_call_past_the_limit_is_cancelled_and_raises_timeout_exceeded() -> None:
    sleeper = Sleeper()
    started = anyio.current_time()
    with pytest.raises(TimeoutExceededError, match=r"operation exceeded 0.05s") as raised:
        await with_timeout(sleeper, 0.05)
    assert anyio.current_time() - started < 0.2
    assert sleeper.was_cancelled
    assert raised.value.seconds == 0.05
    assert isinstance(raised.value.__cause__, TimeoutError)


async def test_the_message_replaces_the_default_text() -> None:
    with pytest.raises(TimeoutExceededError, match=r"^database query exceeded 50ms$"):
        await with_timeout(Sleeper(), 0.05, "database query exceeded 50ms")


async def test_a_timeout_error_raised_by_the_call_itself_passes_through() -> None:
    async def socket_timeout() -> None:
        await anyio.lowlevel.checkpoint()
        raise TimeoutError("read timed out")

    with pytest.raises(TimeoutError, match="read timed out") as raised:
        await with_timeout(socket_timeout, 5.0)
    assert not isinstance(raised.value, TimeoutExceededError)


async def test_an_inner_limit_that_expires_first_is_the_one_reported() -> None:
    async def inner() -> str:
        return await with_timeout(Sleeper(), 0.05, "inner")

    with pytest.raises(TimeoutExceededError, match=r"^inner$") as raised:
        await with_timeout(inner, 5.0, "outer")
    assert raised.value.seconds == 0.05


async def test_an_enclosing_cancellation_is_not_turned_into_a_timeout() -> None:
    sleeper = Sleeper()
    with anyio.move_on_after(0.05) as outer:
        await with_timeout(sleeper, 5.0)
    assert outer.cancelled_caught
    assert sleeper.was_cancelled


async def test_an_enclosing_cancel_propagates_even_with_a_shorter_limit_already_set() -> None:
    with anyio.CancelScope() as outer:

        async def cancel_outer() -> None:
            outer.cancel()
            await anyio.sleep(10.0)

        await with_timeout(cancel_outer, 0.05)
    assert outer.cancelled_caught


async def test_other_errors_pass_through_unchanged() -> None:
    async def broken() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await with_timeout(broken, 1.0)


async def test_a_timeout_object_limits_every_call_it_executes() -> None:
    limit = Timeout(0.05, "pricing too slow")

    async def price(sku: str) -> int:
        await anyio.lowlevel.checkpoint()
        return len(sku)

    assert await limit.execute(price, "sku-1") == 5
    with pytest.raises(TimeoutExceededError, match="pricing too slow"):
        await limit.execute(Sleeper())


@pytest.mark.parametrize("seconds", [0, -1.0, float("inf"), float("nan"), True, "5"])
async def test_with_timeout_refuses_a_limit_that_is_not_a_positive_number(seconds: object) -> None:
    with pytest.raises(ValueError, match=r"seconds=.* is not allowed: expected a number > 0"):
        await with_timeout(Sleeper(), seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), r"seconds=0 is not allowed: expected a number > 0"),
        ((1.0, 42), r"message=42 is not allowed: expected a string or None"),
    ],
)
def test_timeout_checks_its_options_at_construction(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Timeout(*args)  # type: ignore[arg-type]
