"""Circuit breaker: a flaky payment gateway trips the breaker, which rejects
calls at once, waits out its reset timeout, probes and closes again.

Then the two rules beyond a plain failure count: a failure *rate* over a
sliding window (with a minimum number of calls before it judges), and slow
calls that open the breaker although every one of them succeeded.

Run it: ``meshgate demo circuit-breaker``.
"""

from __future__ import annotations

import anyio

from meshgate.resilience import (
    CircuitBreaker,
    CircuitBreakerRegistry,
    CircuitOpenError,
    CircuitState,
)


class NotFoundError(Exception):
    """The caller asked for something that does not exist: not the service's fault."""


class PaymentGateway:
    """A simulated payment gateway. Knobs: `is_down` makes every charge fail
    with ConnectionError; `latency` is how long a charge takes (seconds)."""

    def __init__(self) -> None:
        self.is_down = False
        self.latency = 0.0
        self.calls = 0

    async def charge(self, amount: int) -> str:
        self.calls += 1
        await anyio.sleep(self.latency)
        if amount < 0:
            raise NotFoundError(f"no order for amount {amount}")
        if self.is_down:
            raise ConnectionError("payment gateway unreachable")
        return f"charged {amount}"


class Transitions:
    """Collects the breaker's state changes (its `on_state_change` listener),
    so each call's line can say which move it caused."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def __call__(self, old: CircuitState, new: CircuitState) -> None:
        self.pending.append(f"{old.name}→{new.name}")

    def take(self) -> str:
        moved = ", ".join(self.pending)
        self.pending.clear()
        return f" → breaker {moved}" if moved else ""


async def call(
    number: int,
    breaker: CircuitBreaker,
    gateway: PaymentGateway,
    amount: int,
    transitions: Transitions,
) -> None:
    try:
        result = await breaker.execute(gateway.charge, amount)
        outcome = f"ok ({result})"
    except CircuitOpenError as error:
        outcome = f"rejected at once, retry in {error.retry_after:.2f}s"
    except NotFoundError:
        outcome = "not found (NotFoundError): the service answered, not counted"
    except Exception as error:
        outcome = f"failed ({type(error).__name__})"
    print(f"  call {number}: {outcome}{transitions.take()}   [{breaker.state.name}]")


async def count_based() -> None:
    print("1. Three failures open the breaker; 0.3 s later two good probes close it.")
    print("   failure_threshold=3, success_threshold=2, reset_timeout=0.3,")
    print("   a NotFoundError does not count (failure_predicate)")
    gateway = PaymentGateway()
    transitions = Transitions()
    breaker = CircuitBreaker(
        failure_threshold=3,
        success_threshold=2,
        reset_timeout=0.3,
        failure_predicate=lambda error: not isinstance(error, NotFoundError),
        on_state_change=transitions,
        name="payment",
    )
    number = 0

    async def next_call(amount: int = 100) -> None:
        nonlocal number
        number += 1
        await call(number, breaker, gateway, amount, transitions)

    await next_call()
    await next_call(-1)
    print("  -- the gateway goes down --")
    gateway.is_down = True
    for _ in range(3):
        await next_call()
    await next_call()
    await next_call()
    print(f"  (the gateway was called {gateway.calls} times: open rejects without calling)")
    print("  -- the gateway recovers; wait 0.35 s for the reset timeout --")
    gateway.is_down = False
    await anyio.sleep(0.35)
    await next_call()
    await next_call()
    await next_call()


async def failure_rate() -> None:
    print()
    print("2. Failure rate: open at 50% failed of the last 10 calls, judged from 4 calls on.")
    gateway = PaymentGateway()
    transitions = Transitions()
    breaker = CircuitBreaker(
        failure_rate_threshold=50.0,
        minimum_calls=4,
        sliding_window={"type": "count", "size": 10},
        reset_timeout=0.3,
        on_state_change=transitions,
        name="payment-rate",
    )
    pattern = [False, True, False, True, False, True]  # every other call fails
    for number, fails in enumerate(pattern, start=1):
        gateway.is_down = fails
        await call(number, breaker, gateway, 100, transitions)
        metrics = breaker.metrics
        rate = f"{metrics.failures}/{metrics.calls} failed ({metrics.failure_rate:.0f}%)"
        print(f"          window: {rate}")
        if breaker.state is CircuitState.OPEN:
            break


async def slow_calls() -> None:
    print()
    print("3. Slow calls: every charge succeeds, but takes 60 ms; calls of 50 ms or more")
    print("   are slow, and 50% slow of at least 3 calls opens the breaker.")
    gateway = PaymentGateway()
    gateway.latency = 0.06
    transitions = Transitions()
    breaker = CircuitBreaker(
        slow_call_threshold=50.0,
        slow_call_duration=0.05,
        minimum_calls=3,
        sliding_window={"type": "count", "size": 10},
        reset_timeout=0.3,
        on_state_change=transitions,
        name="payment-slow",
    )
    for number in range(1, 5):
        await call(number, breaker, gateway, 100, transitions)
    print(f"  slow calls in the window: {breaker.metrics.slow_calls}")


def registry() -> None:
    print()
    print("4. A registry hands out one breaker per name.")
    breakers = CircuitBreakerRegistry()
    payment = breakers.get_or_create("payment-service", failure_threshold=3, reset_timeout=15.0)
    again = breakers.get_or_create("payment-service")
    print(f"  get_or_create('payment-service') twice → same breaker: {payment is again}")
    print(f"  {payment!r} with failure_threshold={payment.config.failure_threshold}")


async def main() -> None:
    await count_based()
    await failure_rate()
    await slow_calls()
    registry()


if __name__ == "__main__":
    anyio.run(main)
