"""Retry: the three backoff schedules, a flaky call retried until it works,
a predicate that retries only transient errors, the jitter modes side by side,
and a retry budget that caps retries across calls.

Run it: ``meshgate demo retry``.
"""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel

from meshgate.resilience import Backoff, RetryBudget, RetryExhaustedError, RetryPolicy


class FlakyApi:
    """A simulated external API. Knobs: the first `failures` calls fail with
    `error`; after that every call succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("503 service unavailable")
        self.calls = 0

    async def fetch(self) -> str:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        if self.calls <= self.failures:
            raise self.error
        return f"data (on call {self.calls})"


def schedules() -> None:
    print("1. Backoff schedules, base_delay=0.1 s, max_delay=1 s, no jitter:")
    for strategy in ("fixed", "linear", "exponential"):
        policy = RetryPolicy(max_attempts=6, backoff=strategy, base_delay=0.1, max_delay=1.0)
        delays = ", ".join(f"{delay:.1f}" for delay in policy.delays())
        print(f"  {strategy:<12} {delays}")


async def flaky_call() -> None:
    print()
    print("2. A call that fails twice, retried with exponential backoff and full jitter:")

    def on_retry(error: Exception, attempt: int) -> None:
        print(f"  attempt {attempt} failed ({type(error).__name__}: {error}) → retry")

    async def sleep(delay: float) -> None:
        print(f"    waiting {delay * 1000:.0f} ms")
        await anyio.sleep(delay)

    api = FlakyApi(failures=2)
    policy = RetryPolicy(
        max_attempts=4,
        backoff="exponential",
        base_delay=0.02,
        jitter=True,
        on_retry=on_retry,
        sleep=sleep,
        random=random.Random(1),
    )
    print(f"  result: {await policy.execute(api.fetch)} after {api.calls} attempts")


async def predicate() -> None:
    print()
    print("3. retry_predicate: retry timeouts and 503s only; a 400 fails at once.")

    def is_transient(error: Exception) -> bool:
        return "timeout" in str(error) or "503" in str(error)

    for error in (ConnectionError("503 service unavailable"), ValueError("400 bad request")):
        api = FlakyApi(failures=10, error=error)
        policy = RetryPolicy(
            max_attempts=3, backoff="fixed", base_delay=0.005, retry_predicate=is_transient
        )
        try:
            await policy.execute(api.fetch)
        except RetryExhaustedError as exhausted:
            print(f"  {error}: retried, gave up after {exhausted.attempts} attempts")
        except ValueError as refused:
            print(f"  {refused}: not retried, raised after {api.calls} attempt")


def jitter_modes() -> None:
    print()
    print("4. Jitter spreads clients that failed together (exponential, base 0.1 s, max 2 s):")
    for jitter in (None, "full", "equal", "decorrelated"):
        backoff = Backoff("exponential", 0.1, 2.0, jitter, random=random.Random(7))
        delays: list[float] = []
        previous: float | None = None
        for attempt in range(1, 7):
            previous = backoff.delay(attempt, previous)
            delays.append(previous)
        shown = ", ".join(f"{delay:.2f}" for delay in delays)
        print(f"  {jitter or 'none':<13} {shown}")
    print("  (decorrelated: each delay drawn from [base, 3 × the one before], capped at max)")


async def budget() -> None:
    print()
    print("5. A retry budget: retries may add at most 20% to the calls, as in Finagle.")
    print("   10 calls to a dead service, max_attempts=3 each:")
    shared = RetryBudget(ratio=0.2, min_retries_per_second=0.0, window=10.0)
    policy = RetryPolicy(max_attempts=3, backoff="fixed", base_delay=0.001, budget=shared)
    api = FlakyApi(failures=1_000)
    spent = []
    for _ in range(10):
        before = api.calls
        try:
            await policy.execute(api.fetch)
        except RetryExhaustedError:
            spent.append(api.calls - before)
    print("  attempts per call: " + " ".join(str(attempts) for attempts in spent))
    print(f"  {api.calls} attempts in all, instead of {10 * 3} without the budget")


async def main() -> None:
    schedules()
    await flaky_call()
    await predicate()
    jitter_modes()
    await budget()


if __name__ == "__main__":
    anyio.run(main)
