"""Per-call overhead of guarding a trivial awaited call, ours next to peers.

Run: `.venv/bin/python benchmarks/resilience_overhead.py [--calls N] [--repeats R]`
(peers come with `pip install -e '.[bench]'`; a missing peer is reported as such).

Each row awaits a trivial coroutine N times through one guard, R times over,
and keeps the best run (the least disturbed by the rest of the machine). The
overhead is that time per call minus a bare `await fn()`. Everything runs on
one asyncio loop in this process, so the rows compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Loop = Callable[[int], Awaitable[None]]


async def trivial() -> int:
    return 1


def trivial_sync() -> int:
    return 1


async def bare(n: int) -> None:
    for _ in range(n):
        await trivial()


def ours() -> dict[str, Loop]:
    from meshgate.resilience import (
        Bulkhead,
        CircuitBreaker,
        RateLimiter,
        RetryPolicy,
    )

    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=30.0)
    retry = RetryPolicy(max_attempts=3, backoff="exponential", base_delay=0.1)
    bucket = RateLimiter(strategy="token-bucket", max=10**12, window=1.0)
    # a 10 ms window admitting 100k never refuses at ~1M calls per second
    window = RateLimiter(strategy="sliding-window", max=100_000, window=0.01)
    bulkhead = Bulkhead(max_concurrent=10)

    async def breaker_loop(n: int) -> None:
        for _ in range(n):
            await breaker.execute(trivial)

    async def retry_loop(n: int) -> None:
        for _ in range(n):
            await retry.execute(trivial)

    async def bucket_loop(n: int) -> None:
        for _ in range(n):
            await bucket.execute(trivial)

    async def window_loop(n: int) -> None:
        for _ in range(n):
            await window.execute(trivial)

    async def bulkhead_loop(n: int) -> None:
        for _ in range(n):
            await bulkhead.execute(trivial)

    return {
        "breaker": breaker_loop,
        "retry (no failure)": retry_loop,
        "rate limiter (token bucket)": bucket_loop,
        "rate limiter (sliding window)": window_loop,
        "bulkhead": bulkhead_loop,
    }


def peers() -> dict[str, dict[str, Loop]]:
    found: dict[str, dict[str, Loop]] = {"breaker": {}, "retry (no failure)": {},
                                         "rate limiter (token bucket)": {}, "bulkhead": {}}
    try:
        import aiobreaker

        aio = aiobreaker.CircuitBreaker(fail_max=5)

        async def aiobreaker_loop(n: int) -> None:
            for _ in range(n):
                await aio.call_async(trivial)

        found["breaker"]["aiobreaker"] = aiobreaker_loop
    except ImportError:
        pass
    try:
        import purgatory

        factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5)

        async def purgatory_loop(n: int) -> None:
            for _ in range(n):
                async with await factory.get_breaker("bench"):
                    await trivial()

        found["breaker"]["purgatory"] = purgatory_loop
    except ImportError:
        pass
    try:
        import pybreaker

        sync_breaker = pybreaker.CircuitBreaker(fail_max=5)

        async def pybreaker_loop(n: int) -> None:
            # pybreaker guards sync calls only (its call_async needs tornado)
            for _ in range(n):
                sync_breaker.call(trivial_sync)

        found["breaker"]["pybreaker (sync call)"] = pybreaker_loop
    except ImportError:
        pass
    try:
        import tenacity

        @tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential())
        async def tenacity_trivial() -> int:
            return 1

        async def tenacity_loop(n: int) -> None:
            for _ in range(n):
                await tenacity_trivial()

        found["retry (no failure)"]["tenacity"] = tenacity_loop
    except ImportError:
        pass
    try:
        import stamina

        @stamina.retry(on=Exception, attempts=3)
        async def stamina_trivial() -> int:
            return 1

        async def stamina_loop(n: int) -> None:
            for _ in range(n):
                await stamina_trivial()

        found["retry (no failure)"]["stamina"] = stamina_loop
    except ImportError:
        pass
    try:
        import aiolimiter

        limiter = aiolimiter.AsyncLimiter(10**12, 1.0)

        async def aiolimiter_loop(n: int) -> None:
            for _ in range(n):
                async with limiter:
                    await trivial()

        found["rate limiter (token bucket)"]["aiolimiter"] = aiolimiter_loop
    except ImportError:
        pass

    semaphore = asyncio.Semaphore(10)

    async def semaphore_loop(n: int) -> None:
        for _ in range(n):
            async with semaphore:
                await trivial()

    found["bulkhead"]["asyncio.Semaphore"] = semaphore_loop
    return found


async def best_per_call(loop: Loop, calls: int, repeats: int) -> float:
    """Microseconds per call, best of `repeats` runs of `calls` calls."""
    await loop(min(calls, 1000))  # warm caches and lazily created state
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        await loop(calls)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


async def measure(calls: int, repeats: int) -> list[tuple[str, str, float, float]]:
    base = await best_per_call(bare, calls, repeats)
    rows: list[tuple[str, str, float, float]] = [("(bare await)", "-", base, 0.0)]
    mine = ours()
    theirs = peers()
    for feature, loop in mine.items():
        rows.append((feature, "meshgate", await best_per_call(loop, calls, repeats), base))
        for peer, peer_loop in theirs.get(feature, {}).items():
            rows.append((feature, peer, await best_per_call(peer_loop, calls, repeats), base))
    return rows


def print_table(rows: list[tuple[str, str, float, float]]) -> None:
    ours_by_feature = {f: t - b for f, who, t, b in rows if who == "meshgate"}
    print("| feature | library | µs per call | overhead µs | overhead vs meshgate |")
    print("|---|---|---:|---:|---:|")
    for feature, who, total, base in rows:
        if who == "-":
            print(f"| {feature} | - | {total:.3f} | - | - |")
            continue
        overhead = total - base
        mine = ours_by_feature[feature]
        ratio = overhead / mine if mine > 0 else float("nan")
        print(f"| {feature} | {who} | {total:.3f} | {overhead:.3f} | {ratio:.1f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    args_dict: dict[str, Any] = vars(args)
    print_table(asyncio.run(measure(args_dict["calls"], args_dict["repeats"])))


if __name__ == "__main__":
    main()
