"""Rate limiter: a token bucket lets a quiet client burst and then refills
steadily; a sliding window admits exactly `max` calls in any `window` seconds.
Refused calls learn how long until the next permit (for `Retry-After`).

Run it: ``meshgate demo rate-limiter``.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

from meshgate.resilience import RateLimiter, RateLimitExceededError


class SearchApi:
    """A simulated search endpoint; it only counts what reaches it."""

    def __init__(self) -> None:
        self.calls = 0

    async def search(self, term: str) -> list[str]:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        return [f"{term}-{self.calls}"]


async def burst(limiter: RateLimiter, api: SearchApi, calls: int, first: int) -> None:
    """`calls` requests at once, numbered from `first`."""
    for number in range(first, first + calls):
        try:
            await limiter.execute(api.search, "shoes")
            print(f"  request {number}: allowed, permits left: {limiter.available_permits()}")
        except RateLimitExceededError as error:
            print(f"  request {number}: refused, next permit in {error.retry_after:.2f}s")


async def token_bucket() -> None:
    print("1. Token bucket, max=5 per 0.5 s: a burst of 5, then a permit every 0.1 s.")
    limiter = RateLimiter(strategy="token-bucket", max=5, window=0.5)
    api = SearchApi()
    await burst(limiter, api, calls=7, first=1)
    print(f"  time_until_next_permit() = {limiter.time_until_next_permit():.2f}s")
    print("  -- 0.2 s later: two tokens have dripped back --")
    await anyio.sleep(0.2)
    await burst(limiter, api, calls=3, first=8)
    print(f"  the API saw {api.calls} of 10 requests")


async def sliding_window() -> None:
    print()
    print("2. Sliding window, max=3 per 0.3 s: never more than 3 in any 0.3 s.")
    limiter = RateLimiter(strategy="sliding-window", max=3, window=0.3)
    api = SearchApi()
    await burst(limiter, api, calls=4, first=1)
    print("  -- 0.15 s later (a token bucket would be half full again) --")
    await anyio.sleep(0.15)
    await burst(limiter, api, calls=1, first=5)
    wait = limiter.time_until_next_permit()
    print(f"  -- {wait:.2f}s later, the first calls leave the window --")
    await anyio.sleep(wait + 0.01)
    await burst(limiter, api, calls=4, first=6)


async def waiting() -> None:
    print()
    print("3. acquire(max_wait=0.15) waits its turn for a permit instead of refusing,")
    print("   unless the wait would be longer. Five requests at once, max=2 per 0.2 s:")
    limiter = RateLimiter(strategy="token-bucket", max=2, window=0.2)
    started = anyio.current_time()

    async def request(number: int) -> None:
        try:
            await limiter.acquire(max_wait=0.15)
        except RateLimitExceededError as error:
            print(f"  request {number}: would wait {error.retry_after:.2f}s, refused at once")
            return
        waited = anyio.current_time() - started
        print(f"  request {number}: permit after {waited * 1000:.0f} ms")

    async with anyio.create_task_group() as tg:
        for number in range(1, 6):
            tg.start_soon(request, number)
            await anyio.wait_all_tasks_blocked()


async def main() -> None:
    await token_bucket()
    await sliding_window()
    await waiting()


if __name__ == "__main__":
    anyio.run(main)
