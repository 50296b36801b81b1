"""A replica's admin API drives the cluster's rollout: on a real nats-server
with a real canary controller, ``POST /admin/canaries?action=pause`` reaches
the controller (which persists and broadcasts it, and the replica follows);
with no controller, the replica acts alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from gateway_node.canary_control import bus_canary_control
from gateway_node.canary_follower import follow_canary_weights
from meshgate.bus.connection import Bus
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.gateway.admin_api import AdminApi
from meshgate.gateway.http.server import HttpServer
from meshgate.gateway.server import GatewayServer
from tests.integration.canary.cluster import (
    canary_config,
    controllers,
    stored_snapshot,
    watch_broadcasts,
)
from tests.integration.canary.conftest import Connect
from tests.polling import eventually

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def admin_of(gateway: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    """`gateway`'s admin API on a free loopback port (loopback may write)."""
    server = HttpServer(AdminApi(gateway, token=None).handle)
    await server.start("127.0.0.1", 0)
    host, port = server.bound[0]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10.0) as client:
            yield client
    finally:
        await server.close()


async def pause_orders(admin: httpx.AsyncClient, action: str = "pause") -> httpx.Response:
    return await admin.post("/admin/canaries", params={"route": "orders", "action": action})


async def test_an_admin_pause_pauses_the_rollout_at_the_controller(
    bus: Bus, connect: Connect
) -> None:
    broadcasts = await watch_broadcasts(bus)
    # The replica as gateway_node wires it: the hook and the follower on its bus.
    gateway = GatewayServer(canary_config("orders"), MemoryRegistryBackend())
    gateway.canary_control = bus_canary_control(bus)
    engine = gateway.canaries()["orders"]
    async with anyio.create_task_group() as tg, admin_of(gateway) as admin:
        tg.start_soon(follow_canary_weights, bus, gateway)
        async with controllers(tg, connect, canary_config("orders"), "canary-a"):
            # The leader announces the rollout once it leads (and serves control).
            await eventually(lambda: bool(broadcasts.reminders("orders")))
            paused = await pause_orders(admin)
            body = paused.json()
            assert paused.status_code == 200, body
            assert (body["acted_by"], body["changed"], body["state"]) == (
                "controller",
                True,
                "paused",
            )
            assert (body["canary_weight"], body["stable_weight"], body["step"]) == (
                10.0,
                90.0,
                -1,
            )
            snapshot = await stored_snapshot(bus, "orders")
            assert snapshot is not None
            assert snapshot.state == "paused"
            await eventually(lambda: [e.kind for e in broadcasts.decisions("orders")] == ["pause"])
            # This replica learns it as every other one does: from the broadcast.
            await eventually(lambda: engine.state == "paused")
        tg.cancel_scope.cancel()


async def test_with_no_controller_the_replica_acts_alone(bus: Bus) -> None:
    gateway = GatewayServer(canary_config("orders"), MemoryRegistryBackend())
    gateway.canary_control = bus_canary_control(bus)
    async with admin_of(gateway) as admin:
        paused = await pause_orders(admin)
    assert (paused.status_code, paused.json()["acted_by"], paused.json()["state"]) == (
        200,
        "replica",
        "paused",
    )
    assert gateway.canaries()["orders"].state == "paused"
