"""The guard decorators, under asyncio and trio: the order a stack runs in,
who answers when it fails, what is checked when, and which calls share a guard.

Each guard reports what it saw through its own hooks (the breaker's
`failure_predicate`, the retry's `on_retry`), so a test can tell which layer
met which error. Delays are a few milliseconds; no test waits for long."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from meshgate.resilience import (
    BulkheadFullError,
    CircuitBreakerRegistry,
    CircuitOpenError,
    CircuitState,
    RateLimitExceededError,
    RetryExhaustedError,
    TimeoutExceededError,
    bulkhead,
    circuit_breaker,
    fallback,
    rate_limit,
    retry,
    timeout,
)

anyio_test = pytest.mark.anyio


class GatewayDownError(ConnectionError):
    """The payment gateway did not answer."""


class Seen:
    """Notes, in order, which layer met which error."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def breaker_saw(self, error: Exception) -> bool:
        self.events.append(f"breaker:{type(error).__name__}")
        return True

    def retry_saw(self, error: Exception, attempt: int) -> None:
        self.events.append(f"retry {attempt}:{type(error).__name__}")


@pytest.fixture
def shared_breaker_name() -> Iterator[str]:
    """A name in the default breaker registry, forgotten after the test."""
    name = "test-decorators-shared"
    CircuitBreakerRegistry.remove(name)
    yield name
    CircuitBreakerRegistry.remove(name)


# -- order -------------------------------------------------------------------


@anyio_test
async def test_stacked_guards_run_outermost_first() -> None:
    seen = Seen()
    calls = 0

    @circuit_breaker(failure_threshold=5, failure_predicate=seen.breaker_saw)
    @retry(max_attempts=2, backoff="fixed", base_delay=0.001, on_retry=seen.retry_saw)
    @timeout(0.02)
    async def charge(amount: int) -> str:
        nonlocal calls
        calls += 1
        await anyio.sleep(10)
        return f"charged {amount}"

    with pytest.raises(RetryExhaustedError) as raised:
        await charge(10)

    # the method timed out in the timeout layer; retry saw that, twice, and
    # gave up; the breaker saw only the retry layer's verdict
    assert seen.events == [
        "retry 1:TimeoutExceededError",
        "breaker:RetryExhaustedError",
    ]
    assert calls == 2
    assert raised.value.attempts == 2
    assert isinstance(raised.value.last_error, TimeoutExceededError)


@anyio_test
async def test_a_breaker_above_a_retry_counts_one_failure_per_exhausted_call() -> None:
    attempts = 0

    @circuit_breaker(failure_threshold=2, reset_timeout=60.0)
    @retry(max_attempts=3, backoff="fixed", base_delay=0.001)
    async def charge() -> str:
        nonlocal attempts
        attempts += 1
        await anyio.lowlevel.checkpoint()
        raise GatewayDownError("no route to gateway")

    for _ in range(2):
        with pytest.raises(RetryExhaustedError):
            await charge()
    assert attempts == 6
    with pytest.raises(CircuitOpenError):
        await charge()
    assert attempts == 6


@anyio_test
async def test_a_limiter_inside_a_retry_is_asked_on_every_attempt() -> None:
    @retry(max_attempts=3, backoff="fixed", base_delay=0.001)
    @rate_limit(strategy="sliding-window", max=1, window=60.0)
    async def lookup() -> str:
        raise GatewayDownError("down")

    # attempt 1 takes the only permit and fails; attempts 2 and 3 are refused
    with pytest.raises(RetryExhaustedError) as raised:
        await lookup()
    assert isinstance(raised.value.last_error, RateLimitExceededError)


@anyio_test
async def test_a_limiter_outside_a_retry_is_asked_once_per_call() -> None:
    attempts = 0

    @rate_limit(strategy="sliding-window", max=1, window=60.0)
    @retry(max_attempts=3, backoff="fixed", base_delay=0.001)
    async def lookup() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise GatewayDownError("down")
        return "found"

    assert await lookup() == "found"
    with pytest.raises(RateLimitExceededError):
        await lookup()


# -- fallback ----------------------------------------------------------------


class PaymentService:
    """Every instance shares the guards of `process_payment`."""

    def __init__(self, *, is_down: bool = False) -> None:
        self.is_down = is_down
        self.charged: list[int] = []
        self.queued: list[int] = []

    @circuit_breaker(failure_threshold=2, reset_timeout=60.0)
    @retry(max_attempts=2, backoff="fixed", base_delay=0.001)
    @timeout(1.0)
    @bulkhead(max_concurrent=5, max_queue=10)
    async def process_payment(self, amount: int, *, currency: str = "EUR") -> str:
        await anyio.lowlevel.checkpoint()
        if self.is_down:
            raise GatewayDownError("payment gateway down")
        self.charged.append(amount)
        return f"charged {amount} {currency}"

    @fallback("process_payment")
    async def process_payment_fallback(self, amount: int, *, currency: str = "EUR") -> str:
        self.queued.append(amount)
        return f"queued {amount} {currency}"


@anyio_test
async def test_a_call_that_succeeds_does_not_reach_the_fallback() -> None:
    service = PaymentService()
    assert await service.process_payment(10, currency="USD") == "charged 10 USD"
    assert service.queued == []


@anyio_test
async def test_the_fallback_method_answers_a_failed_call_with_its_arguments() -> None:
    service = PaymentService(is_down=True)
    assert await service.process_payment(25, currency="GBP") == "queued 25 GBP"


@anyio_test
async def test_the_fallback_answers_once_for_the_whole_stack() -> None:
    service = PaymentService(is_down=True)
    await service.process_payment(25)
    assert service.queued == [25]


@anyio_test
async def test_the_fallback_answers_while_the_circuit_is_open_without_calling() -> None:
    calls = 0

    class Prices:
        @circuit_breaker(failure_threshold=1, reset_timeout=60.0)
        async def price(self, sku: str) -> int:
            nonlocal calls
            calls += 1
            raise GatewayDownError("pricing down")

        @fallback("price")
        def cached_price(self, sku: str) -> int:  # a sync fallback is fine too
            return 100

    prices = Prices()
    assert await prices.price("sku-1") == 100  # failed: the breaker opens
    assert await prices.price("sku-1") == 100  # open: answered without a call
    assert calls == 1


@anyio_test
async def test_a_subclass_inherits_the_fallback() -> None:
    class CheapPaymentService(PaymentService):
        pass

    service = CheapPaymentService(is_down=True)
    assert await service.process_payment(5) == "queued 5 EUR"


@anyio_test
async def test_without_a_fallback_the_outermost_error_propagates() -> None:
    @circuit_breaker(failure_threshold=5)
    @retry(max_attempts=2, backoff="fixed", base_delay=0.001)
    async def charge() -> str:
        raise GatewayDownError("down")

    with pytest.raises(RetryExhaustedError) as raised:
        await charge()
    assert isinstance(raised.value.last_error, GatewayDownError)


@anyio_test
async def test_a_fallback_function_above_the_guards_answers_a_plain_function() -> None:
    answered: list[tuple[Any, ...]] = []

    async def cached_price(sku: str, *, region: str) -> int:
        answered.append((sku, region))
        return 100

    @fallback(cached_price)
    @circuit_breaker(failure_threshold=1, reset_timeout=60.0)
    @retry(max_attempts=2, backoff="fixed", base_delay=0.001)
    async def price(sku: str, *, region: str) -> int:
        raise GatewayDownError("pricing down")

    assert await price("sku-1", region="eu") == 100
    assert await price("sku-2", region="us") == 100  # circuit open now
    assert answered == [("sku-1", "eu"), ("sku-2", "us")]


@anyio_test
async def test_a_sync_fallback_function_answers_too() -> None:
    @fallback(lambda sku: 0)
    @retry(max_attempts=1)
    async def price(sku: str) -> int:
        raise GatewayDownError("pricing down")

    assert await price("sku-1") == 0


@anyio_test
async def test_a_plain_function_does_not_borrow_a_fallback_from_its_first_argument() -> None:
    # `process_payment` here is a module-level function that happens to share
    # its name with a method that has a fallback: that fallback is not its own.
    @retry(max_attempts=1)
    async def process_payment(service: PaymentService, amount: int) -> str:
        raise GatewayDownError("down")

    service = PaymentService()
    with pytest.raises(RetryExhaustedError):
        await process_payment(service, 10)
    assert service.queued == []


@anyio_test
async def test_cancellation_is_not_answered_by_the_fallback() -> None:
    answered = False

    def answer() -> str:
        nonlocal answered
        answered = True
        return "fallback"

    @fallback(answer)
    @circuit_breaker(failure_threshold=1)
    async def slow() -> str:
        await anyio.sleep(10)
        return "done"

    with anyio.move_on_after(0.01):
        await slow()
    assert not answered


def test_a_fallback_function_on_a_function_without_guards_is_a_type_error() -> None:
    async def cached() -> int:
        return 1

    with pytest.raises(TypeError, match=r"above its guards"):

        @fallback(cached)
        async def price() -> int:
            return 2


# -- checked when decorating ------------------------------------------------------


GUARDS: dict[str, Callable[[], Callable[[Callable[..., Awaitable[Any]]], Any]]] = {
    "circuit_breaker": lambda: circuit_breaker(failure_threshold=3),
    "retry": lambda: retry(max_attempts=3),
    "timeout": lambda: timeout(1.0),
    "bulkhead": lambda: bulkhead(max_concurrent=2),
    "rate_limit": lambda: rate_limit(max=10, window=1.0),
}


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_a_guard_on_a_sync_function_is_a_type_error(guard: str) -> None:
    def charge(amount: int) -> str:
        return "charged"

    with pytest.raises(TypeError, match=r"charge must be async"):
        GUARDS[guard]()(charge)  # type: ignore[arg-type]


BAD_OPTIONS: dict[str, tuple[Callable[[], object], str]] = {
    "circuit_breaker(failure_threshold=0)": (
        lambda: circuit_breaker(failure_threshold=0),
        "failure_threshold",
    ),
    "circuit_breaker(reset_timeout=-1)": (
        lambda: circuit_breaker(reset_timeout=-1.0),
        "reset_timeout",
    ),
    "retry(max_attempts=0)": (lambda: retry(max_attempts=0), "max_attempts"),
    "retry(backoff=quadratic)": (lambda: retry(backoff="quadratic"), "backoff"),
    "retry(jitter=some)": (lambda: retry(jitter="some"), "jitter"),
    "timeout(0)": (lambda: timeout(0), "seconds"),
    "timeout(-5)": (lambda: timeout(-5.0), "seconds"),
    "timeout(nan)": (lambda: timeout(float("nan")), "seconds"),
    "timeout(inf)": (lambda: timeout(float("inf")), "seconds"),
    "timeout(True)": (lambda: timeout(True), "seconds"),
    "timeout(message=42)": (lambda: timeout(1.0, message=42), "message"),  # type: ignore[arg-type]
    "bulkhead(max_concurrent=0)": (lambda: bulkhead(max_concurrent=0), "max_concurrent"),
    "bulkhead(max_queue=-1)": (lambda: bulkhead(max_queue=-1), "max_queue"),
    "rate_limit(strategy=leaky)": (lambda: rate_limit(strategy="leaky-bucket"), "strategy"),
    "rate_limit(max=0)": (lambda: rate_limit(max=0), "max"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_options_are_checked_when_the_decorator_is_written(case: str) -> None:
    make, option = BAD_OPTIONS[case]
    with pytest.raises(ValueError, match=rf"^{option}="):
        make()


def test_an_unknown_option_is_a_type_error_at_once() -> None:
    with pytest.raises(TypeError, match=r"failure_treshold"):
        circuit_breaker(failure_treshold=3)


def test_a_guarded_function_keeps_its_name_and_docstring() -> None:
    async def charge(amount: int) -> str:
        """Charge the card."""
        return "charged"

    guarded = circuit_breaker()(retry()(charge))
    assert guarded.__name__ == "charge"
    assert guarded.__doc__ == "Charge the card."


# -- who shares a guard ------------------------------------------------------


@anyio_test
async def test_every_instance_shares_the_guards_of_a_method() -> None:
    calls = 0

    class Inventory:
        def __init__(self, *, is_down: bool) -> None:
            self.is_down = is_down

        @circuit_breaker(failure_threshold=1, reset_timeout=60.0)
        async def reserve(self, sku: str) -> str:
            nonlocal calls
            calls += 1
            if self.is_down:
                raise GatewayDownError("inventory down")
            return f"reserved {sku}"

    with pytest.raises(GatewayDownError):
        await Inventory(is_down=True).reserve("sku-1")
    with pytest.raises(CircuitOpenError):
        await Inventory(is_down=False).reserve("sku-1")
    assert calls == 1


@anyio_test
async def test_one_decorator_written_once_gives_each_function_its_own_guard() -> None:
    guard = circuit_breaker(failure_threshold=1, reset_timeout=60.0)

    @guard
    async def failing() -> str:
        raise GatewayDownError("down")

    @guard
    async def healthy() -> str:
        return "ok"

    with pytest.raises(GatewayDownError):
        await failing()
    with pytest.raises(CircuitOpenError):
        await failing()
    assert await healthy() == "ok"


@anyio_test
async def test_a_named_breaker_is_shared_through_the_registry(shared_breaker_name: str) -> None:
    @circuit_breaker(name=shared_breaker_name, failure_threshold=1, reset_timeout=60.0)
    async def charge() -> str:
        raise GatewayDownError("down")

    @circuit_breaker(name=shared_breaker_name)
    async def refund() -> str:
        return "refunded"

    breaker = CircuitBreakerRegistry.get(shared_breaker_name)
    assert breaker is not None
    assert breaker.config.failure_threshold == 1
    with pytest.raises(GatewayDownError):
        await charge()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError, match=shared_breaker_name):
        await refund()


@anyio_test
async def test_an_unnamed_breaker_is_named_after_its_function() -> None:
    class Ledger:
        @circuit_breaker(failure_threshold=1, reset_timeout=60.0)
        async def post(self) -> None:
            raise GatewayDownError("ledger down")

    with pytest.raises(GatewayDownError):
        await Ledger().post()
    with pytest.raises(CircuitOpenError, match=r"Ledger\.post' is open") as raised:
        await Ledger().post()
    assert raised.value.name.endswith("<locals>.Ledger.post")


# -- each guard alone ----------------------------------------------------------


@anyio_test
async def test_timeout_cancels_a_slow_call_with_its_message() -> None:
    @timeout(0.01, "pricing took longer than 10ms")
    async def price() -> int:
        await anyio.sleep(10)
        return 1

    with pytest.raises(TimeoutExceededError, match=r"^pricing took longer than 10ms$"):
        await price()


@anyio_test
async def test_bulkhead_refuses_a_call_when_slots_and_queue_are_full() -> None:
    release = anyio.Event()
    started = 0

    @bulkhead(max_concurrent=1, max_queue=0)
    async def render() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "page"

    async with anyio.create_task_group() as tg:
        tg.start_soon(render)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError):
            await render()
        release.set()
    assert started == 1


@anyio_test
async def test_rate_limit_refuses_past_the_limit_with_the_time_to_wait() -> None:
    @rate_limit(strategy="token-bucket", max=2, window=60.0)
    async def search(term: str) -> list[str]:
        return [term]

    assert await search("a") == ["a"]
    assert await search("b") == ["b"]
    with pytest.raises(RateLimitExceededError) as raised:
        await search("c")
    assert 0 < raised.value.retry_after <= 30.0


@anyio_test
async def test_a_partial_of_a_guarded_method_still_finds_the_fallback() -> None:
    service = PaymentService(is_down=True)
    pay = functools.partial(service.process_payment, currency="SEK")
    assert await pay(7) == "queued 7 SEK"
