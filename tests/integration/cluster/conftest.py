"""In-process gateway replicas on one real nats-server: each with its own
bus connection (as separate processes would have), presence, and the
cluster parts a test asks for (circuits, rate shares, routes)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.abc
import httpx
import msgspec
import pytest

from gateway_node.circuit_sync import CircuitSync
from gateway_node.presence import PeerTable, announce_presence, watch_presence
from gateway_node.publishers import CircuitBroadcaster
from gateway_node.rate_share import RateShare
from gateway_node.route_sync import RouteSync
from meshgate.bus.connection import Bus
from meshgate.bus.messages import Presence
from meshgate.gateway.server import GatewayServer
from tests.polling import eventually


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # nats-py and the gateway's HTTP path run on asyncio


@pytest.fixture
def prefix() -> str:
    """A subject prefix of the test's own, so that tests sharing the session's
    nats-server never hear each other (streams and buckets are per prefix too)."""
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass
class Replica:
    id: str
    bus: Bus
    gateway: GatewayServer
    peers: PeerTable
    client: httpx.AsyncClient
    circuits: CircuitSync | None = None
    rates: RateShare | None = None
    routes: RouteSync | None = None
    opened_at: list[float] = field(default_factory=list)


@dataclass
class Parts:
    """Which cluster parts each replica runs, and their knobs."""

    circuits: bool = False
    probe_grace: float = 2.0
    rates: bool = False
    rate_interval: float = 0.25
    routes: bool = False


@asynccontextmanager
async def replica(
    nats_url: str, prefix: str, replica_id: str, config: dict[str, Any], parts: Parts
) -> AsyncIterator[Replica]:
    """One replica, serving on a free port, until the block ends."""
    async with AsyncExitStack() as stack:
        bus = await stack.enter_async_context(
            await Bus.connect(nats_url, prefix=prefix, name=replica_id)
        )
        gateway = GatewayServer.from_config(config)
        peers = PeerTable(ttl=6.0)
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        opened_at: list[float] = []
        gateway.on("circuit:open", lambda _: opened_at.append(time.monotonic()))
        tg.start_soon(watch_presence, bus, peers)
        routes = circuits = rates = None
        if parts.routes:
            routes = RouteSync(bus, gateway, replica_id)
            await tg.start(routes.run)
        if parts.circuits:
            broadcaster = CircuitBroadcaster(bus, replica_id)
            circuits = CircuitSync(
                bus, gateway, replica_id, peers, broadcaster, probe_grace=parts.probe_grace
            )
            gateway.add_circuit_hook(circuits.on_transition)
            tg.start_soon(broadcaster.run)
            await tg.start(circuits.run)
        if parts.rates:
            rates = RateShare(bus, gateway, replica_id, peers, interval=parts.rate_interval)
            await tg.start(rates.run)
        [(host, port)] = await tg.start(_serve, gateway)

        def presence(leaving: bool) -> Presence:
            return Presence(
                replica_id=replica_id, address=f"{host}:{port}", started_at=0.0, leaving=leaving
            )

        tg.start_soon(functools.partial(announce_presence, bus, presence, interval=0.2))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10.0)
        )
        yield Replica(replica_id, bus, gateway, peers, client, circuits, rates, routes, opened_at)


async def _serve(
    gateway: GatewayServer,
    *,
    task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    await gateway.serve(listen="127.0.0.1:0", task_status=task_status)


@asynccontextmanager
async def cluster(
    nats_url: str,
    prefix: str,
    ids: Sequence[str],
    config: dict[str, Any],
    parts: Parts,
) -> AsyncIterator[list[Replica]]:
    """`ids` replicas of `config`, started one after the other, each knowing
    every other (presence heard) before the block runs."""
    async with AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(replica(nats_url, prefix, rid, config, parts))
            for rid in ids
        ]
        await all_know_each_other(started)
        yield started


async def all_know_each_other(replicas: Sequence[Replica]) -> None:
    everyone = {r.id for r in replicas}

    def known() -> bool:
        now = time.monotonic()
        return all({p.replica_id for p in r.peers.live(now)} >= everyone for r in replicas)

    await eventually(known, within=10.0)


M = TypeVar("M", bound=msgspec.Struct)


async def recorded(bus: Bus, subject: str, kind: type[M]) -> list[M]:
    """Every message of `kind` published on `subject` from now on (until `bus` closes)."""
    seen: list[M] = []

    async def keep(message: M) -> None:
        seen.append(message)

    await bus.subscribe(subject, kind, keep)
    return seen
