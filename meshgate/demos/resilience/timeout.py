"""Timeout: a slow query is cut off (and really cancelled) by `with_timeout`,
a fast one is let through; a reusable `Timeout`; and a timeout inside a retry,
so a call that hangs once gets a second chance.

Run it: ``meshgate demo timeout``.
"""

from __future__ import annotations

import anyio

from meshgate.resilience import RetryPolicy, Timeout, TimeoutExceededError, with_timeout


class Database:
    """A simulated database. Knob: `latencies`, the seconds each query takes
    in turn (the last one repeats)."""

    def __init__(self, *latencies: float) -> None:
        self.latencies = list(latencies)
        self.queries = 0
        self.cancelled = 0

    async def query(self, sql: str) -> list[str]:
        latency = self.latencies[min(self.queries, len(self.latencies) - 1)]
        self.queries += 1
        try:
            await anyio.sleep(latency)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        return [f"row for {sql!r} after {latency * 1000:.0f} ms"]


async def timed(label: str, database: Database, limit: float) -> None:
    started = anyio.current_time()
    try:
        rows = await with_timeout(
            lambda: database.query("select 1"), limit, f"database query exceeded {limit:g}s"
        )
        outcome = f"ok: {rows[0]}"
    except TimeoutExceededError as error:
        outcome = f"timed out: {error}"
    elapsed = (anyio.current_time() - started) * 1000
    print(f"  {label}: {outcome} ({elapsed:.0f} ms)")


async def fast_and_slow() -> None:
    print("1. with_timeout(query, 0.1): a 20 ms query and a 2 s one.")
    fast, slow = Database(0.02), Database(2.0)
    await timed("fast query", fast, 0.1)
    await timed("slow query", slow, 0.1)
    print(f"  the slow query was cancelled, not abandoned: cancelled={slow.cancelled}")


async def reusable() -> None:
    print()
    print("2. A Timeout is a guard like the others: Timeout(0.05).execute(fn, *args).")
    limit = Timeout(0.05, "pricing took longer than 50 ms")
    database = Database(0.01, 0.5)
    for attempt in (1, 2):
        try:
            rows = await limit.execute(database.query, "select price")
            print(f"  call {attempt}: {rows[0]}")
        except TimeoutExceededError as error:
            print(f"  call {attempt}: TimeoutExceededError: {error}")


async def with_retry() -> None:
    print()
    print("3. Timeout inside a retry: the first attempt hangs, the second is quick.")
    database = Database(1.0, 0.01)

    def on_retry(error: Exception, attempt: int) -> None:
        print(f"  attempt {attempt}: {type(error).__name__} ({error}) → retry")

    limit = Timeout(0.08)
    policy = RetryPolicy(max_attempts=3, backoff="fixed", base_delay=0.01, on_retry=on_retry)
    rows = await policy.execute(limit.execute, database.query, "select 1")
    print(f"  attempt {database.queries}: {rows[0]}")


async def main() -> None:
    await fast_and_slow()
    await reusable()
    await with_retry()


if __name__ == "__main__":
    anyio.run(main)
