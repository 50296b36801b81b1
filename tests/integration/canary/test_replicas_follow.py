"""Gateway replicas follow the controller: every replica's engine takes the
cluster's weights as they change, a replica that starts late learns them
from the next reminder, and with no controller the weights stay put."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from gateway_node.canary_follower import follow_canary_weights
from meshgate.bus.connection import Bus
from meshgate.bus.messages import ControlReply, ControlRequest
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.gateway.server import GatewayServer
from tests.integration.canary.cluster import (
    canary_config,
    controllers,
    report_traffic,
    watch_broadcasts,
)
from tests.integration.canary.conftest import Connect
from tests.polling import eventually

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def replica(
    tg: anyio.abc.TaskGroup, connect: Connect, name: str
) -> AsyncIterator[GatewayServer]:
    """A gateway (not serving HTTP: only its engines matter here) following
    the broadcasts on a connection of its own."""
    gateway = GatewayServer(canary_config("orders"), MemoryRegistryBackend())
    scope = anyio.CancelScope()

    async def follow(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with scope:
            async with connect(name) as bus:
                task_status.started()
                await follow_canary_weights(bus, gateway)

    await tg.start(follow)
    try:
        yield gateway
    finally:
        scope.cancel()


def weight(gateway: GatewayServer) -> float:
    return gateway.canaries()["orders"].canary_weight


async def test_every_replica_routes_with_the_weights_the_controller_decides(
    bus: Bus, connect: Connect
) -> None:
    broadcasts = await watch_broadcasts(bus)
    heard: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:
        async with (
            replica(tg, connect, "gw-1") as first,
            replica(tg, connect, "gw-2") as second,
            controllers(tg, connect, canary_config("orders"), "canary-a"),
        ):
            first.on("canary:step", heard.append)
            tg.start_soon(report_traffic, bus, "orders")
            await eventually(lambda: len(broadcasts.decisions("orders")) >= 2, within=10)
            decided = broadcasts.decisions("orders")[-1].canary_weight
            await eventually(lambda: weight(first) == weight(second) == decided)
            assert first.canaries()["orders"].current_step == 1
            await eventually(lambda: first.canaries()["orders"].state == "promoted", within=10)
        tg.cancel_scope.cancel()
    assert [event["canary_weight"] for event in heard][:2] == [25.0, 50.0]
    assert heard[0]["route"] == "orders"


async def test_a_replica_that_starts_late_learns_the_weights_from_the_reminder(
    bus: Bus, connect: Connect
) -> None:
    broadcasts = await watch_broadcasts(bus)
    async with anyio.create_task_group() as tg:
        async with controllers(tg, connect, canary_config("orders"), "canary-a"):
            tg.start_soon(report_traffic, bus, "orders")
            await eventually(lambda: bool(broadcasts.decisions("orders")), within=10)
            request = ControlRequest(route="orders", action="pause")
            await bus.request(bus.subjects.canary_control("orders"), request, ControlReply)
            decisions = len(broadcasts.decisions("orders"))
            async with replica(tg, connect, "gw-late") as late:
                # no decision is broadcast any more, yet within a reminder it agrees
                await eventually(lambda: late.canaries()["orders"].state == "paused", within=1.5)
                assert weight(late) == broadcasts.decisions("orders")[-1].canary_weight
            assert len(broadcasts.decisions("orders")) == decisions
        tg.cancel_scope.cancel()


async def test_without_a_controller_a_replica_keeps_its_configured_weights(
    bus: Bus, connect: Connect
) -> None:
    async with anyio.create_task_group() as tg:
        async with replica(tg, connect, "gw-1") as alone:
            engine = alone.canaries()["orders"]
            for _ in range(50):
                engine.record_success("canary", 5.0)
            tg.start_soon(report_traffic, bus, "orders")
            await anyio.sleep(1.5)  # past the step interval
            assert (engine.canary_weight, engine.state) == (10.0, "active")
        tg.cancel_scope.cancel()
