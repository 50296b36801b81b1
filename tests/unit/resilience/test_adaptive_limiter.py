"""AdaptiveConcurrencyLimiter: samples fed to the algorithm, and the limit it
returns enforced by the bulkhead machinery, under asyncio and trio."""

from __future__ import annotations

import anyio
import pytest

from meshgate.resilience.adaptive_limit import AimdLimit, GradientLimit
from meshgate.resilience.adaptive_limiter import AdaptiveConcurrencyLimiter
from meshgate.resilience.clock import ManualClock
from meshgate.resilience.errors import BulkheadFullError, BulkheadTimeoutError

pytestmark = pytest.mark.anyio


class ScriptedLimit:
    """Records every sample and answers with the next limit of a script."""

    def __init__(self, initial: int, script: list[int] | None = None) -> None:
        self._limit = initial
        self._script = list(script or [])
        self.samples: list[tuple[float, float, int, bool]] = []

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, now: float, rtt: float, inflight: int, dropped: bool) -> int:
        self.samples.append((now, rtt, inflight, dropped))
        if self._script:
            self._limit = self._script.pop(0)
        return self._limit


async def test_each_call_is_sampled_with_its_rtt_and_inflight() -> None:
    clock = ManualClock(start=100.0)
    algorithm = ScriptedLimit(initial=5)
    limiter = AdaptiveConcurrencyLimiter(algorithm, clock=clock)

    async def slow(seconds: float) -> str:
        clock.advance(seconds)
        return "done"

    assert await limiter.execute(slow, 0.25) == "done"
    assert algorithm.samples == [(100.25, 0.25, 1, False)]


async def test_a_call_that_raises_is_a_drop_and_its_error_goes_through() -> None:
    clock = ManualClock()
    algorithm = ScriptedLimit(initial=5)
    limiter = AdaptiveConcurrencyLimiter(algorithm, clock=clock)

    async def fail() -> None:
        clock.advance(0.5)
        raise TimeoutError("upstream")

    with pytest.raises(TimeoutError):
        await limiter.execute(fail)
    assert algorithm.samples == [(0.5, 0.5, 1, True)]
    assert limiter.active == 0


async def test_inflight_counts_the_calls_running_when_a_call_started() -> None:
    algorithm = ScriptedLimit(initial=3)
    limiter = AdaptiveConcurrencyLimiter(algorithm, clock=ManualClock())
    events = [anyio.Event() for _ in range(3)]

    async def hold(event: anyio.Event) -> None:
        await event.wait()

    async with anyio.create_task_group() as tg:
        for event in events:
            tg.start_soon(limiter.execute, hold, event)
            await anyio.wait_all_tasks_blocked()
        assert limiter.active == 3
        for event in events:
            event.set()
    assert sorted(inflight for _, _, inflight, _ in algorithm.samples) == [1, 2, 3]


async def test_a_cancelled_call_is_not_a_sample_and_frees_its_slot() -> None:
    algorithm = ScriptedLimit(initial=1)
    limiter = AdaptiveConcurrencyLimiter(algorithm, clock=ManualClock())
    started = anyio.Event()

    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.execute, hang)
        await started.wait()
        tg.cancel_scope.cancel()
    assert algorithm.samples == []
    assert limiter.active == 0


async def test_the_limit_returned_by_the_algorithm_is_enforced() -> None:
    algorithm = ScriptedLimit(initial=2, script=[1])
    limiter = AdaptiveConcurrencyLimiter(algorithm, clock=ManualClock())

    async def quick() -> None:
        return None

    assert limiter.limit == 2
    await limiter.execute(quick)
    assert limiter.limit == 1
    release = anyio.Event()

    async def hold() -> None:
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.execute, hold)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError) as raised:
            await limiter.execute(quick)
        assert raised.value.max_concurrent == 1
        release.set()


async def test_a_higher_limit_admits_queued_calls_at_once() -> None:
    algorithm = ScriptedLimit(initial=1, script=[3])
    limiter = AdaptiveConcurrencyLimiter(algorithm, clock=ManualClock(), max_queue=2)
    release_first = anyio.Event()
    release_rest = anyio.Event()
    started: list[str] = []

    async def hold(name: str, release: anyio.Event) -> None:
        started.append(name)
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.execute, hold, "first", release_first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(limiter.execute, hold, "a", release_rest)
        tg.start_soon(limiter.execute, hold, "b", release_rest)
        await anyio.wait_all_tasks_blocked()
        assert (limiter.active, limiter.queued) == (1, 2)
        release_first.set()
        await anyio.wait_all_tasks_blocked()
        assert limiter.limit == 3
        assert (limiter.active, limiter.queued) == (2, 0)
        assert sorted(started) == ["a", "b", "first"]
        release_rest.set()


async def test_aimd_backs_off_on_errors_and_grows_under_load() -> None:
    limiter = AdaptiveConcurrencyLimiter(
        AimdLimit(initial=4, min_limit=1, max_limit=10, backoff_ratio=0.5), clock=ManualClock()
    )

    async def fail() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        await limiter.execute(fail)
    assert limiter.limit == 2
    first, second = anyio.Event(), anyio.Event()

    async def hold(release: anyio.Event) -> None:
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.execute, hold, first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(limiter.execute, hold, second)
        await anyio.wait_all_tasks_blocked()
        # each ran with at least half the limit in use: 1 of 2, then 2 of 3
        first.set()
        await anyio.wait_all_tasks_blocked()
        assert limiter.limit == 3
        second.set()
    assert limiter.limit == 4


async def test_queue_timeout_applies_while_waiting_for_a_slot() -> None:
    limiter = AdaptiveConcurrencyLimiter(
        ScriptedLimit(initial=1), clock=ManualClock(), max_queue=1, queue_timeout=0.05
    )
    release = anyio.Event()

    async def hold() -> None:
        await release.wait()

    async def quick() -> None:
        return None

    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.execute, hold)
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(2.0), pytest.raises(BulkheadTimeoutError):
            await limiter.execute(quick)
        assert limiter.queued == 0
        release.set()


@pytest.mark.parametrize(("name", "kind"), [("aimd", AimdLimit), ("gradient", GradientLimit)])
async def test_named_algorithms_start_from_their_defaults(name: str, kind: type) -> None:
    limiter = AdaptiveConcurrencyLimiter(name)  # type: ignore[arg-type]
    assert isinstance(limiter.algorithm, kind)
    assert limiter.limit == 20


@pytest.mark.parametrize("limit", ["vegas", 42, None])
async def test_an_unknown_limit_is_refused_at_construction(limit: object) -> None:
    with pytest.raises(ValueError, match=f"limit={limit!r}.*'aimd', 'gradient'"):
        AdaptiveConcurrencyLimiter(limit)  # type: ignore[arg-type]


async def test_queue_options_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="max_queue=-1"):
        AdaptiveConcurrencyLimiter("aimd", max_queue=-1)
    with pytest.raises(ValueError, match="queue_timeout=0"):
        AdaptiveConcurrencyLimiter("aimd", queue_timeout=0)
