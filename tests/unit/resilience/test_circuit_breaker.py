"""The async `CircuitBreaker` and the registry, under asyncio and trio, with a
manual clock: the breaker's time moves only when a test moves it."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from meshgate.resilience.circuit_breaker import (
    BreakerSnapshot,
    CircuitBreaker,
    CircuitBreakerRegistry,
    CircuitState,
)
from meshgate.resilience.clock import ManualClock
from meshgate.resilience.errors import CircuitOpenError, TimeoutExceededError

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

pytestmark = pytest.mark.anyio


class ServiceDownError(Exception):
    """The service failed."""


class NotFoundError(Exception):
    """The caller asked for something that is not there: not the service's fault."""


class Service:
    """A fake dependency that counts its calls and fails while `is_down`."""

    def __init__(self) -> None:
        self.calls = 0
        self.is_down = False

    async def __call__(self, value: str = "ok") -> str:
        self.calls += 1
        if self.is_down:
            raise ServiceDownError(value)
        return value


def breaker(clock: ManualClock | None = None, **options: Any) -> CircuitBreaker:
    options.setdefault("name", "payment")
    return CircuitBreaker(clock=clock or ManualClock(), wall_clock=lambda: 1_000.0, **options)


async def fail_until_open(guarded: CircuitBreaker, service: Service) -> None:
    service.is_down = True
    while guarded.state is CLOSED:
        with pytest.raises(ServiceDownError):
            await guarded.execute(service)


# -- calling -------------------------------------------------------------------


async def test_execute_returns_what_the_call_returns() -> None:
    assert await breaker().execute(Service()) == "ok"


async def test_execute_passes_positional_and_keyword_arguments() -> None:
    async def join(a: str, b: str, *, sep: str) -> str:
        return sep.join((a, b))

    assert await breaker().execute(join, "x", "y", sep="-") == "x-y"


async def test_execute_accepts_a_sync_callable() -> None:
    guarded = breaker(failure_threshold=1)
    assert await guarded.execute(max, 3, 9) == 9
    with pytest.raises(ZeroDivisionError):
        await guarded.execute(divmod, 1, 0)
    assert guarded.state is OPEN


async def test_execute_awaits_what_a_sync_callable_returns_to_be_awaited() -> None:
    service = Service()
    assert await breaker().execute(lambda: service("later")) == "later"


# -- opening and closing -------------------------------------------------------


async def test_failures_open_the_circuit_and_an_open_circuit_does_not_call() -> None:
    service = Service()
    guarded = breaker(failure_threshold=3)
    await fail_until_open(guarded, service)
    assert service.calls == 3
    with pytest.raises(CircuitOpenError):
        await guarded.execute(service)
    assert service.calls == 3


async def test_circuit_open_error_names_the_breaker_and_the_seconds_until_a_probe() -> None:
    clock = ManualClock(100.0)
    guarded = breaker(clock, failure_threshold=1, reset_timeout=10.0)
    await fail_until_open(guarded, Service())
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as raised:
        await guarded.execute(Service())
    assert (raised.value.name, raised.value.retry_after) == ("payment", 6.0)


async def test_after_the_reset_timeout_a_probe_runs_and_its_success_closes() -> None:
    clock, service = ManualClock(), Service()
    guarded = breaker(clock, failure_threshold=1, reset_timeout=10.0)
    await fail_until_open(guarded, service)
    clock.advance(10.0)
    assert guarded.state is HALF_OPEN
    service.is_down = False
    assert await guarded.execute(service) == "ok"
    assert guarded.state is CLOSED


async def test_a_failed_probe_reopens_for_another_reset_timeout() -> None:
    clock, service = ManualClock(), Service()
    guarded = breaker(clock, failure_threshold=1, reset_timeout=10.0)
    await fail_until_open(guarded, service)
    clock.advance(10.0)
    with pytest.raises(ServiceDownError):
        await guarded.execute(service)
    clock.advance(9.0)
    with pytest.raises(CircuitOpenError) as raised:
        await guarded.execute(service)
    assert raised.value.retry_after == 1.0


async def test_half_open_rejects_calls_beyond_the_permitted_probes() -> None:
    clock = ManualClock()
    guarded = breaker(clock, failure_threshold=1, reset_timeout=10.0)
    await fail_until_open(guarded, Service())
    clock.advance(10.0)
    release = anyio.Event()
    started = anyio.Event()

    async def slow_probe() -> str:
        started.set()
        await release.wait()
        return "probed"

    async with anyio.create_task_group() as tg:
        tg.start_soon(guarded.execute, slow_probe)
        await started.wait()
        with pytest.raises(CircuitOpenError) as raised:
            await guarded.execute(Service())
        assert raised.value.retry_after == 0.0
        release.set()
    assert guarded.state is CLOSED


async def test_a_call_that_outlives_the_opening_has_no_say_in_the_new_state() -> None:
    guarded = breaker(failure_threshold=1)
    release = anyio.Event()
    started = anyio.Event()

    async def slow_success() -> str:
        started.set()
        await release.wait()
        return "late"

    async with anyio.create_task_group() as tg:
        tg.start_soon(guarded.execute, slow_success)
        await started.wait()
        await fail_until_open(guarded, Service())
        release.set()
    assert guarded.state is OPEN


async def test_a_cancelled_probe_frees_its_slot_and_counts_nothing() -> None:
    clock = ManualClock()
    guarded = breaker(clock, failure_threshold=1, reset_timeout=10.0)
    await fail_until_open(guarded, Service())
    clock.advance(10.0)
    with anyio.move_on_after(0.01):
        await guarded.execute(anyio.sleep_forever)
    assert guarded.state is HALF_OPEN
    assert await guarded.execute(Service()) == "ok"
    assert guarded.state is CLOSED


async def test_a_cancelled_call_in_closed_counts_nothing() -> None:
    guarded = breaker(failure_threshold=1)
    with anyio.move_on_after(0.01):
        await guarded.execute(anyio.sleep_forever)
    assert (guarded.state, guarded.metrics.calls) == (CLOSED, 0)


# -- timeout -------------------------------------------------------------------


async def test_a_call_over_its_timeout_is_cancelled_and_counted_as_a_failure() -> None:
    cancelled = False

    async def hang() -> None:
        nonlocal cancelled
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    guarded = breaker(failure_threshold=1, timeout=0.01)
    with pytest.raises(TimeoutExceededError) as raised:
        await guarded.execute(hang)
    assert raised.value.seconds == 0.01
    assert cancelled
    assert guarded.state is OPEN


async def test_a_call_within_its_timeout_returns_normally() -> None:
    guarded = breaker(failure_threshold=1, timeout=5.0)
    assert await guarded.execute(Service(), "in time") == "in time"
    assert guarded.state is CLOSED


async def test_a_timeout_counts_even_when_the_predicate_counts_nothing() -> None:
    guarded = breaker(failure_threshold=1, timeout=0.01, failure_predicate=lambda error: False)
    with pytest.raises(TimeoutExceededError):
        await guarded.execute(anyio.sleep_forever)
    assert guarded.state is OPEN


async def test_a_timeout_error_raised_by_the_call_itself_goes_through_the_predicate() -> None:
    async def own_timeout() -> None:
        raise TimeoutError("upstream said so")

    guarded = breaker(
        failure_threshold=1, timeout=5.0,
        failure_predicate=lambda error: not isinstance(error, TimeoutError),
    )
    with pytest.raises(TimeoutError, match="upstream said so"):
        await guarded.execute(own_timeout)
    assert guarded.state is CLOSED


async def test_a_timed_out_call_is_answered_by_the_fallback() -> None:
    async def price() -> str:
        await anyio.sleep_forever()
        return "fresh"

    guarded = breaker(timeout=0.01, fallback=lambda: "cached")
    assert await guarded.execute(price) == "cached"
    assert guarded.metrics.failures == 1


# -- failure predicate ---------------------------------------------------------


async def test_an_error_the_predicate_does_not_count_propagates_and_counts_as_success() -> None:
    async def lookup() -> None:
        raise NotFoundError("order 7")

    guarded = breaker(
        failure_threshold=1, failure_predicate=lambda error: not isinstance(error, NotFoundError)
    )
    for _ in range(3):
        with pytest.raises(NotFoundError):
            await guarded.execute(lookup)
    metrics = guarded.metrics
    assert (metrics.state, metrics.calls, metrics.failures) == (CLOSED, 3, 0)


async def test_an_error_the_predicate_counts_is_a_failure() -> None:
    guarded = breaker(
        failure_threshold=1, failure_predicate=lambda error: isinstance(error, ServiceDownError)
    )
    await fail_until_open(guarded, Service())
    assert guarded.state is OPEN


async def test_a_predicate_that_raises_frees_the_probe_slot() -> None:
    is_broken = False

    def predicate(error: Exception) -> bool:
        if is_broken:
            raise RuntimeError("predicate bug")
        return True

    clock, service = ManualClock(), Service()
    guarded = breaker(clock, failure_threshold=1, reset_timeout=10.0, failure_predicate=predicate)
    await fail_until_open(guarded, service)
    clock.advance(10.0)
    is_broken = True
    with pytest.raises(RuntimeError, match="predicate bug"):
        await guarded.execute(service)
    service.is_down = False
    assert await guarded.execute(service) == "ok"
    assert guarded.state is CLOSED


# -- fallback ------------------------------------------------------------------


async def test_the_fallback_answers_a_failed_call_with_the_same_arguments() -> None:
    service = Service()
    service.is_down = True
    guarded = breaker(fallback=lambda value: f"cached {value}")
    assert await guarded.execute(service, "price") == "cached price"
    assert guarded.metrics.failures == 1


async def test_the_fallback_answers_when_the_circuit_is_open_without_calling() -> None:
    service = Service()
    guarded = breaker(failure_threshold=1, fallback=lambda: "cached")
    service.is_down = True
    assert await guarded.execute(service) == "cached"
    assert guarded.state is OPEN
    assert await guarded.execute(service) == "cached"
    assert service.calls == 1


async def test_an_async_fallback_is_awaited() -> None:
    async def from_cache(value: str) -> str:
        await anyio.lowlevel.checkpoint()
        return f"cached {value}"

    service = Service()
    service.is_down = True
    assert await breaker(fallback=from_cache).execute(service, "stock") == "cached stock"


async def test_the_fallback_does_not_answer_errors_the_predicate_ignores() -> None:
    async def lookup() -> None:
        raise NotFoundError

    guarded = breaker(
        fallback=lambda: "cached", failure_predicate=lambda e: not isinstance(e, NotFoundError)
    )
    with pytest.raises(NotFoundError):
        await guarded.execute(lookup)


async def test_an_error_from_the_fallback_carries_the_call_error_as_context() -> None:
    def broken_fallback() -> str:
        raise LookupError("no cache")

    service = Service()
    service.is_down = True
    with pytest.raises(LookupError) as raised:
        await breaker(fallback=broken_fallback).execute(service)
    assert isinstance(raised.value.__context__, ServiceDownError)


# -- hearing transitions -------------------------------------------------------


async def test_on_state_change_hears_each_transition_of_a_cycle() -> None:
    heard: list[tuple[CircuitState, CircuitState]] = []
    clock, service = ManualClock(), Service()
    guarded = breaker(
        clock, failure_threshold=2, reset_timeout=5.0,
        on_state_change=lambda before, after: heard.append((before, after)),
    )
    await fail_until_open(guarded, service)
    clock.advance(5.0)
    service.is_down = False
    await guarded.execute(service)
    assert heard == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


async def test_state_reads_half_open_once_the_reset_timeout_has_passed() -> None:
    clock = ManualClock()
    guarded = breaker(clock, failure_threshold=1, reset_timeout=5.0)
    await fail_until_open(guarded, Service())
    clock.advance(4.9)
    assert guarded.state is OPEN
    clock.advance(0.1)
    assert guarded.state is HALF_OPEN


async def test_durations_come_from_the_clock_for_slow_calls() -> None:
    clock = ManualClock()

    async def slow() -> str:
        clock.advance(2.0)
        return "slow"

    guarded = breaker(clock, slow_call_threshold=100, slow_call_duration=1.0, minimum_calls=2)
    await guarded.execute(slow)
    await guarded.execute(slow)
    assert guarded.state is OPEN


async def test_a_default_breaker_reads_its_clock_only_for_calls_that_fail() -> None:
    reads = 0

    def counting_clock() -> float:
        nonlocal reads
        reads += 1
        return 0.0

    service = Service()
    guarded = CircuitBreaker(name="payment", clock=counting_clock)
    for _ in range(10):
        await guarded.execute(service)
    assert reads == 0
    service.is_down = True
    with pytest.raises(ServiceDownError):
        await guarded.execute(service)
    assert reads == 1


async def test_a_time_window_forgets_failures_as_the_clock_moves() -> None:
    clock, service = ManualClock(), Service()
    guarded = breaker(clock, failure_threshold=2, sliding_window={"type": "time", "size": 10})
    service.is_down = True
    with pytest.raises(ServiceDownError):
        await guarded.execute(service)
    clock.advance(10.0)
    with pytest.raises(ServiceDownError):
        await guarded.execute(service)
    assert guarded.state is CLOSED


# -- operators -----------------------------------------------------------------


async def test_force_open_rejects_calls_until_reset() -> None:
    clock, service = ManualClock(), Service()
    guarded = breaker(clock, reset_timeout=5.0)
    guarded.force_open()
    clock.advance(1_000.0)
    with pytest.raises(CircuitOpenError):
        await guarded.execute(service)
    guarded.reset()
    assert await guarded.execute(service) == "ok"
    assert service.calls == 1


async def test_a_disabled_breaker_calls_through_and_never_opens() -> None:
    service = Service()
    guarded = breaker(failure_threshold=1)
    guarded.disable()
    service.is_down = True
    for _ in range(5):
        with pytest.raises(ServiceDownError):
            await guarded.execute(service)
    assert guarded.state is CircuitState.DISABLED
    assert service.calls == 5


async def test_reset_closes_an_open_breaker() -> None:
    service = Service()
    guarded = breaker(failure_threshold=1)
    await fail_until_open(guarded, service)
    guarded.reset()
    service.is_down = False
    assert (guarded.state, await guarded.execute(service)) == (CLOSED, "ok")


# -- sharing state -------------------------------------------------------------


async def test_a_peer_adopting_an_open_state_rejects_until_the_same_wall_clock_moment() -> None:
    their_clock, our_clock = ManualClock(50_000.0), ManualClock(3.0)
    wall = {"now": 1_700_000_000.0}
    theirs = CircuitBreaker(failure_threshold=1, reset_timeout=30.0, name="payment",
                            clock=their_clock, wall_clock=lambda: wall["now"])
    ours = CircuitBreaker(failure_threshold=1, reset_timeout=30.0, name="payment",
                          clock=our_clock, wall_clock=lambda: wall["now"])
    await fail_until_open(theirs, Service())
    wire = msgspec.json.encode(theirs.export_state())
    assert ours.adopt(msgspec.json.decode(wire, type=BreakerSnapshot))

    our_clock.advance(29.0)
    wall["now"] += 29.0
    with pytest.raises(CircuitOpenError) as raised:
        await ours.execute(Service())
    assert raised.value.retry_after == pytest.approx(1.0)
    our_clock.advance(1.0)
    wall["now"] += 1.0
    assert await ours.execute(Service()) == "ok"
    assert ours.state is CLOSED


async def test_an_exported_snapshot_describes_the_breaker() -> None:
    clock = ManualClock(10.0)
    guarded = breaker(clock, failure_threshold=1, reset_timeout=30.0)
    await fail_until_open(guarded, Service())
    assert guarded.export_state() == BreakerSnapshot(
        name="payment", state=OPEN, generation=1, reopens=0, reset_deadline=1_030.0
    )


async def test_a_stale_snapshot_is_not_adopted() -> None:
    guarded = breaker(failure_threshold=1)
    await fail_until_open(guarded, Service())
    guarded.reset()
    stale = BreakerSnapshot(name="payment", state=OPEN, generation=1, reset_deadline=2_000.0)
    assert not guarded.adopt(stale)
    assert guarded.state is CLOSED


# -- reading -------------------------------------------------------------------


async def test_metrics_count_the_window_and_the_rejected_calls() -> None:
    service = Service()
    guarded = breaker(failure_threshold=2)
    await guarded.execute(service)
    await fail_until_open(guarded, service)
    with pytest.raises(CircuitOpenError):
        await guarded.execute(service)
    metrics = guarded.metrics
    assert (metrics.name, metrics.state, metrics.calls, metrics.failures, metrics.rejected) == (
        "payment", OPEN, 3, 2, 1
    )
    assert metrics.failure_rate == pytest.approx(200 / 3)


async def test_the_breaker_shows_its_name_options_and_state() -> None:
    guarded = breaker(failure_threshold=3, timeout=2.0)
    assert (guarded.name, guarded.config.failure_threshold, guarded.timeout) == ("payment", 3, 2.0)
    assert repr(guarded) == "<CircuitBreaker 'payment' closed>"


# -- options -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, r"failure_threshold=0 is not allowed"),
        ({"timeout": 0}, r"timeout=0 is not allowed: expected a number > 0"),
        ({"timeout": "5s"}, r"timeout='5s' is not allowed"),
        ({"sliding_window": {"type": "ring", "size": 5}}, r"sliding_window\.type='ring'"),
        ({"sliding_window": {"type": "time", "size": 0}}, r"sliding_window\.size=0"),
        ({"sliding_window": {"type": "count", "size": 2}},
         r"sliding_window\.size=2 is not allowed: expected at least failure_threshold"),
        ({"failure_predicate": "down"}, r"failure_predicate='down' is not allowed: "
         r"expected a callable or None"),
        ({"on_state_change": 1}, r"on_state_change=1 is not allowed"),
        ({"fallback": "cached"}, r"fallback='cached' is not allowed"),
        ({"clock": 0.0}, r"clock=0\.0 is not allowed"),
        ({"failure_rate_threshold": 150}, r"failure_rate_threshold=150 is not allowed"),
        ({"max_reset_timeout": 1.0}, r"max_reset_timeout=1\.0 is not allowed"),
    ],
)
async def test_every_option_is_checked_at_construction(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**options)


# -- registry ------------------------------------------------------------------


async def test_the_registry_makes_a_breaker_once_and_shares_it_after() -> None:
    registry = CircuitBreakerRegistry()
    payment = registry.get_or_create("payment", failure_threshold=3)
    assert registry.get_or_create("payment") is payment
    assert payment.name == "payment"
    assert payment.config.failure_threshold == 3


async def test_options_of_a_later_get_or_create_do_not_change_the_breaker() -> None:
    registry = CircuitBreakerRegistry()
    payment = registry.get_or_create("payment", failure_threshold=3)
    assert registry.get_or_create("payment", failure_threshold=9).config.failure_threshold == 3
    assert registry.get("payment") is payment


async def test_the_registry_gets_lists_iterates_and_removes_breakers() -> None:
    registry = CircuitBreakerRegistry()
    payment = registry.get_or_create("payment")
    search = registry.get_or_create("search")
    assert registry.get("payment") is payment
    assert registry.get("stock") is None
    assert registry.all() == [payment, search]
    assert list(registry) == [payment, search]
    assert (len(registry), "search" in registry, "stock" in registry) == (2, True, False)
    assert registry.remove("payment") is payment
    assert registry.remove("payment") is None
    assert registry.all() == [search]
    registry.clear()
    assert len(registry) == 0


async def test_class_level_calls_use_the_default_registry_and_instances_their_own() -> None:
    name = "test-registry-default"
    try:
        shared = CircuitBreakerRegistry.get_or_create(name, failure_threshold=2)
        assert CircuitBreakerRegistry.get(name) is shared
        assert CircuitBreakerRegistry.default.get(name) is shared
        assert shared in CircuitBreakerRegistry.all()
        assert CircuitBreakerRegistry().get(name) is None
    finally:
        CircuitBreakerRegistry.remove(name)
    assert CircuitBreakerRegistry.get(name) is None


async def test_get_or_create_checks_the_options_of_a_new_breaker() -> None:
    with pytest.raises(ValueError, match="reset_timeout=-1 is not allowed"):
        CircuitBreakerRegistry().get_or_create("payment", reset_timeout=-1)

