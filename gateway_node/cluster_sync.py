"""What makes N gateway replicas behave as one gateway, started together
before a replica serves: the event stream exists, the routes changed at
runtime are applied (`route_sync`), the circuits are caught up with the
peers' (`circuit_sync`), and each rate limit holds this replica's share of
the cluster-wide limit (`rate_share`).
"""

from __future__ import annotations

import anyio
import anyio.abc
import structlog

from gateway_node.circuit_sync import CircuitSync
from gateway_node.presence import PeerTable
from gateway_node.publishers import CircuitBroadcaster
from gateway_node.rate_share import RateShare
from gateway_node.route_sync import RouteSync
from meshgate.bus.connection import Bus
from meshgate.bus.event_stream import ensure_event_stream
from meshgate.gateway.server import GatewayServer

log = structlog.get_logger("meshgate.gateway")

EVENT_STREAM_TIMEOUT = 3.0
"""Seconds to wait for JetStream to create or find the event stream at start."""


async def run_cluster_sync(
    bus: Bus,
    gateway: GatewayServer,
    replica_id: str,
    peers: PeerTable,
    broadcaster: CircuitBroadcaster,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Share routes, circuits and rate limits with the other replicas until
    cancelled; `task_status.started()` once this replica may serve.

    It registers the gateway's circuit hook that publishes this replica's
    transitions through `broadcaster` (run `broadcaster.run` beside it); do
    not register the broadcaster's own hook as well, or adopted transitions
    would be published again.

    >>> async def replica(bus: Bus, gateway: GatewayServer, peers: PeerTable) -> None:
    ...     broadcaster = CircuitBroadcaster(bus, "gw-1")
    ...     async with anyio.create_task_group() as tg:
    ...         tg.start_soon(broadcaster.run)
    ...         await tg.start(run_cluster_sync, bus, gateway, "gw-1", peers, broadcaster)
    ...         await gateway.serve()
    """
    with anyio.move_on_after(EVENT_STREAM_TIMEOUT) as waiting:
        try:
            await ensure_event_stream(bus)
        except Exception as error:  # no JetStream: events still flow, unkept
            log.warning("events.stream_unavailable", error=repr(error))
    if waiting.cancelled_caught:
        log.warning("events.stream_unavailable", error="no answer from JetStream")
    circuits = CircuitSync(bus, gateway, replica_id, peers, broadcaster)
    gateway.add_circuit_hook(circuits.on_transition)
    async with anyio.create_task_group() as tg:
        await tg.start(RouteSync(bus, gateway, replica_id).run)
        await tg.start(circuits.run)
        await tg.start(RateShare(bus, gateway, replica_id, peers).run)
        task_status.started()
