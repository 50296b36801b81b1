"""Decorators: a PaymentService whose method carries a breaker, a retry, a
timeout and a bulkhead, stacked and run outermost first, with a fallback
method that queues the payment when the gateway cannot take it; then a plain
function with a fallback function.

Run it: ``meshgate demo decorators``.
"""

from __future__ import annotations

import anyio

from meshgate.resilience import (
    CircuitBreakerRegistry,
    CircuitState,
    bulkhead,
    circuit_breaker,
    fallback,
    rate_limit,
    retry,
    timeout,
)


class PaymentGateway:
    """A simulated card gateway. Knobs: `is_hanging` makes a charge take 10 s;
    `failures_to_come` charges from now on fail with ConnectionError."""

    def __init__(self) -> None:
        self.is_hanging = False
        self.failures_to_come = 0
        self.charges = 0

    async def charge(self, amount: int) -> str:
        self.charges += 1
        await anyio.sleep(10 if self.is_hanging else 0.005)
        if self.failures_to_come > 0:
            self.failures_to_come -= 1
            raise ConnectionError("card gateway unreachable")
        return f"charged {amount}"


def print_transition(old: CircuitState, new: CircuitState) -> None:
    print(f"    breaker payment-gateway: {old.name} → {new.name}")


def print_retry(error: Exception, attempt: int) -> None:
    print(f"    retry: attempt {attempt} failed ({type(error).__name__}), trying again")


class PaymentService:
    """Guards run breaker → retry → timeout → bulkhead → method."""

    def __init__(self, gateway: PaymentGateway) -> None:
        self.gateway = gateway
        self.offline_queue: list[int] = []

    @circuit_breaker(
        name="payment-gateway",
        failure_threshold=2,
        reset_timeout=0.3,
        on_state_change=print_transition,
    )
    @retry(max_attempts=2, backoff="exponential", base_delay=0.02, on_retry=print_retry)
    @timeout(0.05)
    @bulkhead(max_concurrent=5, max_queue=10)
    async def process_payment(self, amount: int) -> str:
        return await self.gateway.charge(amount)

    @fallback("process_payment")
    async def process_payment_fallback(self, amount: int) -> str:
        self.offline_queue.append(amount)
        return f"fallback: queued {amount} offline ({len(self.offline_queue)} waiting)"


async def payments() -> None:
    print("1. PaymentService.process_payment, guarded by")
    print("   @circuit_breaker(failure_threshold=2, reset_timeout=0.3)")
    print("   @retry(max_attempts=2, backoff='exponential', base_delay=0.02)")
    print("   @timeout(0.05)  @bulkhead(max_concurrent=5, max_queue=10)")
    print("   and @fallback('process_payment') on process_payment_fallback.")
    breaker = CircuitBreakerRegistry.get("payment-gateway")
    assert breaker is not None  # made by the decorator, when the class was defined
    breaker.reset()  # the class lives as long as the process: start each run closed

    gateway = PaymentGateway()
    service = PaymentService(gateway)
    number = 0

    async def pay(amount: int, situation: str) -> None:
        nonlocal number
        number += 1
        print(f"  payment {number} of {amount}, gateway {situation}:")
        before = gateway.charges
        result = await service.process_payment(amount)
        print(f"    → {result} (gateway called {gateway.charges - before}x)")

    await pay(10, "up")
    gateway.failures_to_come = 1
    await pay(20, "failing once")  # the retry absorbs it
    gateway.is_hanging = True
    await pay(30, "hanging")  # both tries time out: retry gives up, the breaker counts 1
    await pay(40, "hanging")  # again: the breaker opens
    await pay(50, "hanging")  # open: the fallback answers without calling the gateway
    print(f"  the breaker, read from the registry: {breaker.state.name}")
    print("  -- the gateway comes back; 0.3 s later the breaker lets a probe through --")
    gateway.is_hanging = False
    await anyio.sleep(0.32)
    await pay(60, "up")
    print(f"  offline queue to replay: {service.offline_queue}")


async def cached_price(sku: str) -> str:
    return f"{sku}: 9.99 (cached)"


async def prices() -> None:
    print()
    print("2. A plain function: @fallback(cached_price) above @rate_limit(max=3 per 1 s)")
    print("   and @timeout(0.05). Five lookups in a row; past the limit, the cache answers.")

    # defined here so that each run of the demo starts with a full bucket
    @fallback(cached_price)
    @rate_limit(strategy="token-bucket", max=3, window=1.0)
    @timeout(0.05)
    async def live_price(sku: str) -> str:
        await anyio.sleep(0.005)
        return f"{sku}: 10.49 (live)"

    for number in range(1, 6):
        print(f"  lookup {number}: {await live_price(f'sku-{number}')}")


async def main() -> None:
    await payments()
    await prices()


if __name__ == "__main__":
    anyio.run(main)
