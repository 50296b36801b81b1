"""The canary controller on a real nats-server, in process: the leader steps
a healthy canary on every replica's summed metrics and rolls back a failing
one, persists each rollout and broadcasts each change; a successor resumes
from the persisted step without repeating or skipping one."""

from __future__ import annotations

import functools
import itertools
import time

import anyio
import pytest

from meshgate.bus.connection import Bus
from tests.integration.canary.cluster import (
    LEASE_TTL,
    canary_config,
    controllers,
    lease_holder,
    report_traffic,
    stored_snapshot,
    watch_broadcasts,
)
from tests.integration.canary.conftest import Connect
from tests.polling import eventually

pytestmark = pytest.mark.anyio


async def test_the_leader_steps_a_healthy_canary_to_promotion_and_persists_every_step(
    bus: Bus, connect: Connect
) -> None:
    broadcasts = await watch_broadcasts(bus)
    async with anyio.create_task_group() as tg:
        async with controllers(tg, connect, canary_config("orders"), "canary-a"):
            tg.start_soon(report_traffic, bus, "orders")
            await eventually(lambda: any(e.kind == "promote" for e in broadcasts.events), within=15)
            snapshot = await stored_snapshot(bus, "orders")
        tg.cancel_scope.cancel()
    assert broadcasts.kinds("orders") == [
        ("step", 25.0, 0),
        ("step", 50.0, 1),
        ("step", 100.0, 2),
        ("promote", 100.0, 2),
    ]
    decisions = broadcasts.decisions("orders")
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(decisions)]
    assert min(gaps) >= 0.95  # one step per step_interval
    assert snapshot is not None
    assert (snapshot.state, snapshot.canary_weight, snapshot.step) == ("promoted", 100.0, 2)
    # each decision was taken on both replicas' reports together
    assert decisions[0].stats["canary"]["requests"] >= 5
    assert broadcasts.reminders("orders"), "the current weights are repeated for late joiners"


async def test_the_leader_rolls_back_a_failing_canary_and_persists_it(
    bus: Bus, connect: Connect
) -> None:
    broadcasts = await watch_broadcasts(bus)
    async with anyio.create_task_group() as tg:
        async with controllers(tg, connect, canary_config("orders", "users"), "canary-a"):
            tg.start_soon(functools.partial(report_traffic, bus, "orders", canary_errors=2))
            await eventually(lambda: bool(broadcasts.decisions("orders")), within=10)
            # saved before it was broadcast
            snapshot = await stored_snapshot(bus, "orders")
            untouched = await stored_snapshot(bus, "users")
        tg.cancel_scope.cancel()
    [rollback] = broadcasts.decisions("orders")
    assert (rollback.kind, rollback.state, rollback.canary_weight) == (
        "rollback",
        "rolled-back",
        0.0,
    )
    assert rollback.stats["canary"]["errors"] > 0
    assert snapshot is not None
    assert snapshot.state == "rolled-back"
    # a route without traffic stays where it started, persisted from the first term
    assert untouched is not None
    assert (untouched.state, untouched.canary_weight) == ("active", 10.0)
    assert broadcasts.decisions("users") == []


async def test_a_successor_resumes_at_the_persisted_step_without_repeating_or_skipping(
    bus: Bus, connect: Connect
) -> None:
    broadcasts = await watch_broadcasts(bus)
    config = canary_config("orders", step_interval="1.5s")
    async with anyio.create_task_group() as tg:
        async with controllers(tg, connect, config, "canary-a", "canary-b") as nodes:
            tg.start_soon(report_traffic, bus, "orders")
            await eventually(lambda: bool(broadcasts.decisions("orders")), within=10)
            holder = await lease_holder(bus)
            [leader] = [node for node in nodes if node.name == holder]
            await leader.kill()
            killed_at = time.time()
            await eventually(lambda: len(broadcasts.decisions("orders")) >= 3, within=15)
            successor = await lease_holder(bus)
        tg.cancel_scope.cancel()
    assert successor is not None
    assert successor != holder
    assert [(kind, step) for kind, _, step in broadcasts.kinds("orders")][:3] == [
        ("step", 0),
        ("step", 1),
        ("step", 2),
    ]
    # The successor's first word is the persisted position, as a reminder.
    after_kill = [e for e in broadcasts.events if e.at > killed_at + 0.2 and e.route == "orders"]
    assert (after_kill[0].kind, after_kill[0].step, after_kill[0].canary_weight) == (
        "weights",
        0,
        25.0,
    )
    # Its first step falls no sooner than step_interval after the old leader's last.
    first, second = broadcasts.decisions("orders")[:2]
    assert second.at - first.at >= 1.45
    assert second.at - killed_at <= LEASE_TTL + 1.5 + 1.0
