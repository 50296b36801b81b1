"""Bulkhead: ten calls arrive at once at a bulkhead of 3 slots and a queue of
4. Three run, four wait their turn in arrival order, three are refused. Then a
queue timeout, and a limiter whose limit follows the service (AIMD).

Run it: ``meshgate demo bulkhead``.
"""

from __future__ import annotations

import contextlib

import anyio

from meshgate.resilience import (
    AdaptiveConcurrencyLimiter,
    Bulkhead,
    BulkheadFullError,
    BulkheadTimeoutError,
)
from meshgate.resilience.adaptive_limit import AimdLimit


class ReportService:
    """A simulated service. Knobs: `duration` of a call (seconds), and
    `failing_from`, the call number from which calls raise ConnectionError
    (None: none do)."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.failing_from: int | None = None

    async def render(self, number: int) -> str:
        await anyio.sleep(self.duration)
        if self.failing_from is not None and number >= self.failing_from:
            raise ConnectionError("report service overloaded")
        return f"report {number}"


async def ten_calls() -> None:
    print("1. Ten calls arrive together; max_concurrent=3, max_queue=4, each takes 0.1 s.")
    bulkhead = Bulkhead(max_concurrent=3, max_queue=4)
    service = ReportService(duration=0.1)
    started = anyio.current_time()

    def stamp() -> str:
        return f"t={(anyio.current_time() - started) * 1000:4.0f}ms"

    has_ended: set[int] = set()
    has_started: set[int] = set()
    running = 0

    async def one_call(number: int) -> None:
        async def run() -> str:
            nonlocal running
            has_started.add(number)
            running += 1
            print(f"  {stamp()} call {number:>2}: running ({running} of {bulkhead.max_concurrent})")
            try:
                return await service.render(number)
            finally:
                running -= 1

        try:
            result = await bulkhead.execute(run)
        except BulkheadFullError:
            print(
                f"  {stamp()} call {number:>2}: refused at once: BulkheadFullError "
                f"({bulkhead.active} running, {bulkhead.queued} queued)"
            )
        else:
            print(f"  {stamp()} call {number:>2}: done ({result})")
        has_ended.add(number)

    async with anyio.create_task_group() as tg:
        for number in range(1, 11):
            tg.start_soon(one_call, number)
            # let the call get as far as it can (running, waiting or refused)
            # before the next one arrives, so they arrive strictly in order
            await anyio.wait_all_tasks_blocked()
            if number not in has_started and number not in has_ended:
                print(
                    f"  {stamp()} call {number:>2}: waits in the queue "
                    f"(place {bulkhead.queued} of {bulkhead.max_queue})"
                )


async def queue_timeout() -> None:
    print()
    print("2. queue_timeout=0.05: a call that waits longer than that gives up.")
    bulkhead = Bulkhead(max_concurrent=1, max_queue=2, queue_timeout=0.05)
    service = ReportService(duration=0.2)

    async def one_call(number: int) -> None:
        try:
            await bulkhead.execute(service.render, number)
            print(f"  call {number}: done")
        except BulkheadTimeoutError as error:
            print(f"  call {number}: gave up after {error.queue_timeout:.2f}s in the queue")

    async with anyio.create_task_group() as tg:
        for number in (1, 2):
            tg.start_soon(one_call, number)
            await anyio.wait_all_tasks_blocked()


async def adaptive() -> None:
    print()
    print("3. AdaptiveConcurrencyLimiter (AIMD): each call that succeeds while the limit")
    print("   is well used adds 1 to it (up to 12); each failure cuts it to 3/4.")
    limiter = AdaptiveConcurrencyLimiter(
        AimdLimit(initial=4, min_limit=1, max_limit=12, backoff_ratio=0.75)
    )
    service = ReportService(duration=0.01)

    async def one_call(number: int) -> None:
        with contextlib.suppress(ConnectionError):  # the limiter has seen it
            await limiter.execute(service.render, number)

    for batch, failures in enumerate((0, 0, 0, 3, 2, 0, 0), start=1):
        size = limiter.limit
        # the last `failures` calls of the batch fail
        service.failing_from = size - failures if failures else None
        async with anyio.create_task_group() as tg:
            for number in range(size):
                tg.start_soon(one_call, number)
                await anyio.wait_all_tasks_blocked()
        print(
            f"  batch {batch}: {size:>2} calls at once, {failures} failed → limit {limiter.limit}"
        )


async def main() -> None:
    await ten_calls()
    await queue_timeout()
    await adaptive()


if __name__ == "__main__":
    anyio.run(main)
