"""Bulkhead: slots, the FIFO queue, timeouts and cancellation, under asyncio
and trio. Calls are held and let go with events, so every interleaving is
chosen by the test; only the queue-timeout tests wait on a real (short) clock."""

from __future__ import annotations

import math

import anyio
import pytest

from meshgate.resilience.bulkhead import Bulkhead
from meshgate.resilience.errors import BulkheadFullError, BulkheadTimeoutError, ResilienceError

pytestmark = pytest.mark.anyio


class Gate:
    """A call that notes when it starts and runs until the test lets it go."""

    def __init__(self, name: str, log: list[str] | None = None) -> None:
        self.name = name
        self.log = log if log is not None else []
        self.started = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self) -> str:
        self.log.append(self.name)
        self.started.set()
        await self.release.wait()
        return self.name


async def test_runs_up_to_max_concurrent_calls_at_once() -> None:
    bulkhead = Bulkhead(max_concurrent=2)
    first, second = Gate("first"), Gate("second")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, first)
        tg.start_soon(bulkhead.execute, second)
        await first.started.wait()
        await second.started.wait()
        assert (bulkhead.active, bulkhead.available, bulkhead.queued) == (2, 0, 0)
        first.release.set()
        second.release.set()
    assert (bulkhead.active, bulkhead.available) == (0, 2)


async def test_a_call_with_no_slot_and_no_queue_fails_at_once() -> None:
    bulkhead = Bulkhead(max_concurrent=1)
    holder = Gate("holder")
    called: list[int] = []

    async def extra() -> None:
        called.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, holder)
        await holder.started.wait()
        with pytest.raises(BulkheadFullError) as raised:
            await bulkhead.execute(extra)
        holder.release.set()
    assert (raised.value.max_concurrent, raised.value.max_queue) == (1, 0)
    assert isinstance(raised.value, ResilienceError)
    assert called == []


async def test_a_full_queue_refuses_at_once() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=2)
    holder = Gate("holder")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, holder)
        await holder.started.wait()
        tg.start_soon(bulkhead.execute, Gate("q1"))
        tg.start_soon(bulkhead.execute, Gate("q2"))
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.queued == 2
        with pytest.raises(BulkheadFullError) as raised:
            await bulkhead.execute(Gate("refused"))
        assert raised.value.max_queue == 2
        tg.cancel_scope.cancel()


async def test_returns_the_result_and_passes_the_arguments() -> None:
    bulkhead = Bulkhead()

    async def add(a: int, b: int, *, times: int) -> int:
        return (a + b) * times

    assert await bulkhead.execute(add, 1, 2, times=3) == 9
    assert bulkhead.active == 0


async def test_an_error_in_the_call_frees_its_slot() -> None:
    bulkhead = Bulkhead(max_concurrent=1)

    async def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await bulkhead.execute(fail)
    assert (bulkhead.active, bulkhead.available) == (0, 1)


async def test_queued_calls_run_in_arrival_order_as_slots_free() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=3)
    log: list[str] = []
    holder = Gate("holder", log)
    waiters = [Gate(f"w{i}", log) for i in range(3)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, holder)
        await holder.started.wait()
        for gate in waiters:
            tg.start_soon(bulkhead.execute, gate)
            await anyio.wait_all_tasks_blocked()  # each is queued before the next arrives
        assert (bulkhead.active, bulkhead.queued) == (1, 3)
        holder.release.set()
        for gate in waiters:
            await gate.started.wait()
            assert bulkhead.active == 1
            gate.release.set()
    assert log == ["holder", "w0", "w1", "w2"]
    assert (bulkhead.active, bulkhead.queued) == (0, 0)


async def test_a_newcomer_does_not_overtake_a_waiter_handed_a_slot() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=2)
    log: list[str] = []
    waiter, newcomer = Gate("waiter", log), Gate("newcomer", log)
    await bulkhead.acquire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, waiter)
        await anyio.wait_all_tasks_blocked()
        bulkhead.release()
        # the waiter has not run yet, but the slot is already its own
        assert (bulkhead.active, bulkhead.available, bulkhead.queued) == (1, 0, 0)
        tg.start_soon(bulkhead.execute, newcomer)
        await anyio.wait_all_tasks_blocked()
        assert log == ["waiter"]
        assert bulkhead.queued == 1
        waiter.release.set()
        await newcomer.started.wait()
        newcomer.release.set()
    assert log == ["waiter", "newcomer"]
    assert bulkhead.active == 0


async def test_a_call_queued_longer_than_queue_timeout_fails_and_leaves_the_queue() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=1, queue_timeout=0.05)
    holder = Gate("holder")
    late = Gate("late")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, holder)
        await holder.started.wait()
        with anyio.fail_after(2.0), pytest.raises(BulkheadTimeoutError) as raised:
            await bulkhead.execute(late)
        assert raised.value.queue_timeout == 0.05
        assert bulkhead.queued == 0
        holder.release.set()
    assert not late.started.is_set()
    assert (bulkhead.active, bulkhead.queued) == (0, 0)


async def test_a_call_granted_within_queue_timeout_runs() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=1, queue_timeout=0.1)
    holder = Gate("holder")

    async def quick() -> str:
        return "ran"

    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, holder)
        await holder.started.wait()
        holder.release.set()
        with anyio.fail_after(2.0):
            assert await bulkhead.execute(quick) == "ran"


async def test_cancelling_a_queued_call_frees_its_queue_place() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=1)
    holder = Gate("holder")
    queued = Gate("queued")
    scope = anyio.CancelScope()

    async def queue_then_be_cancelled() -> None:
        with scope:
            await bulkhead.execute(queued)

    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, holder)
        await holder.started.wait()
        tg.start_soon(queue_then_be_cancelled)
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.queued == 1
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.queued == 0
        replacement = Gate("replacement")
        tg.start_soon(bulkhead.execute, replacement)
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.queued == 1  # the place was free: no BulkheadFullError
        holder.release.set()
        await replacement.started.wait()
        replacement.release.set()
    assert not queued.started.is_set()
    assert (bulkhead.active, bulkhead.queued) == (0, 0)


@pytest.mark.parametrize(
    "cancel_first", [True, False], ids=["cancel-then-release", "release-then-cancel"]
)
async def test_a_slot_handed_to_a_waiter_cancelled_in_the_same_instant_passes_to_the_next(
    cancel_first: bool,
) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=2)
    doomed, next_in_line = Gate("doomed"), Gate("next")
    scope = anyio.CancelScope()

    async def doomed_call() -> None:
        with scope:
            await bulkhead.execute(doomed)

    await bulkhead.acquire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(doomed_call)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(bulkhead.execute, next_in_line)
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.queued == 2
        # no checkpoint between the two: neither task runs in between
        if cancel_first:
            scope.cancel()
            bulkhead.release()
        else:
            bulkhead.release()
            scope.cancel()
        with anyio.fail_after(2.0):
            await next_in_line.started.wait()
        assert (bulkhead.active, bulkhead.queued) == (1, 0)
        next_in_line.release.set()
    assert (bulkhead.active, bulkhead.queued, bulkhead.available) == (0, 0, 1)


async def test_cancelling_a_running_call_frees_its_slot() -> None:
    bulkhead = Bulkhead(max_concurrent=1)
    running = Gate("running")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, running)
        await running.started.wait()
        tg.cancel_scope.cancel()
    assert bulkhead.active == 0


async def test_raising_max_concurrent_lets_waiters_in_at_once() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=2)
    holder, a, b = Gate("holder"), Gate("a"), Gate("b")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, holder)
        await holder.started.wait()
        tg.start_soon(bulkhead.execute, a)
        tg.start_soon(bulkhead.execute, b)
        await anyio.wait_all_tasks_blocked()
        bulkhead.max_concurrent = 3
        assert (bulkhead.active, bulkhead.queued) == (3, 0)
        await a.started.wait()
        await b.started.wait()
        for gate in (holder, a, b):
            gate.release.set()
    assert bulkhead.available == 3


async def test_lowering_max_concurrent_lets_running_calls_finish_then_admits_fewer() -> None:
    bulkhead = Bulkhead(max_concurrent=2, max_queue=1)
    a, b, waiter = Gate("a"), Gate("b"), Gate("waiter")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.execute, a)
        tg.start_soon(bulkhead.execute, b)
        await a.started.wait()
        await b.started.wait()
        bulkhead.max_concurrent = 1
        tg.start_soon(bulkhead.execute, waiter)
        await anyio.wait_all_tasks_blocked()
        assert (bulkhead.active, bulkhead.available, bulkhead.queued) == (2, 0, 1)
        a.release.set()
        await anyio.wait_all_tasks_blocked()
        # one running call is still over the new limit of 1
        assert (bulkhead.active, bulkhead.queued) == (1, 1)
        assert not waiter.started.is_set()
        b.release.set()
        await waiter.started.wait()
        assert bulkhead.active == 1
        waiter.release.set()


async def test_acquire_and_release_hold_a_slot_across_several_awaits() -> None:
    bulkhead = Bulkhead(max_concurrent=1)
    await bulkhead.acquire()
    assert bulkhead.available == 0
    with pytest.raises(BulkheadFullError):
        await bulkhead.acquire()
    bulkhead.release()
    assert bulkhead.available == 1


async def test_release_without_acquire_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="without a slot"):
        Bulkhead().release()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrent": 0}, "max_concurrent=0"),
        ({"max_concurrent": 2.0}, "max_concurrent=2.0"),
        ({"max_queue": -1}, "max_queue=-1"),
        ({"queue_timeout": 0}, "queue_timeout=0"),
        ({"queue_timeout": math.inf}, "queue_timeout=inf"),
    ],
)
async def test_options_are_checked_at_construction(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        Bulkhead(**options)  # type: ignore[arg-type]
    assert "expected" in str(raised.value)


async def test_setting_max_concurrent_is_checked() -> None:
    bulkhead = Bulkhead(max_concurrent=3)
    with pytest.raises(ValueError, match="max_concurrent=0"):
        bulkhead.max_concurrent = 0
    assert bulkhead.max_concurrent == 3
