"""Listening to the bus for a moment to see the cluster: presence and canary
weights are broadcast every two seconds, the registry answers queries, and
any replica answers for the circuits."""

from __future__ import annotations

import time

import anyio

from meshgate.bus.errors import BusError
from meshgate.bus.messages import (
    CanaryEvent,
    CircuitStatusReply,
    CircuitStatusRequest,
    Presence,
)
from meshgate.bus.protocol import MessageBus
from meshgate.cluster_status.snapshot import ClusterSnapshot
from meshgate.discovery.backends.bus_client import RegistryClient

LISTEN_SECONDS = 2.5
"""A little longer than the presence and canary-weights intervals (2 s)."""


async def gather(bus: MessageBus, *, listen: float = LISTEN_SECONDS) -> ClusterSnapshot:
    """What the bus tells about the cluster within `listen` seconds."""
    replicas: dict[str, Presence] = {}
    canaries: dict[str, CanaryEvent] = {}

    async def on_presence(presence: Presence) -> None:
        if presence.leaving:
            replicas.pop(presence.replica_id, None)
        else:
            replicas[presence.replica_id] = presence

    async def on_canary(event: CanaryEvent) -> None:
        canaries[event.route] = event

    presence_sub = await bus.subscribe(bus.subjects.presence, Presence, on_presence)
    canary_sub = await bus.subscribe(bus.subjects.all_canary_events, CanaryEvent, on_canary)
    snapshot = ClusterSnapshot(now=time.time())
    try:
        await _registry(bus, snapshot)
        await _circuits(bus, snapshot)
        await anyio.sleep(listen)
    finally:
        await presence_sub.unsubscribe()
        await canary_sub.unsubscribe()
    snapshot.replicas = sorted(replicas.values(), key=lambda p: p.replica_id)
    snapshot.canaries = canaries
    return snapshot


async def _registry(bus: MessageBus, snapshot: ClusterSnapshot) -> None:
    registry = RegistryClient(bus, timeout=2.0)
    try:
        for service in sorted(await registry.get_services()):
            snapshot.instances[service] = sorted(
                await registry.get_instances(service), key=lambda i: i.id
            )
    except BusError as error:
        snapshot.registry_error = str(error)


async def _circuits(bus: MessageBus, snapshot: ClusterSnapshot) -> None:
    try:
        reply = await bus.request(
            bus.subjects.circuit_control,
            CircuitStatusRequest(replica="meshgate-status"),
            CircuitStatusReply,
            timeout=2.0,
        )
    except BusError as error:
        snapshot.circuits_error = f"no replica answered ({error})"
        return
    snapshot.circuits = list(reply.circuits)
