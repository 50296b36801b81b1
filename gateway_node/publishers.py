"""What a replica tells the bus besides presence: per-route, per-version
metrics every interval (for the canary controller, which sums every
replica's), and each transition of a route's breaker as it happens."""

from __future__ import annotations

import time

import anyio
import anyio.abc
import structlog

from meshgate.bus.messages import CircuitEvent, MetricsReport
from meshgate.bus.protocol import MessageBus
from meshgate.gateway.route_runtime import RouteRuntime
from meshgate.gateway.server import GatewayServer
from meshgate.resilience.breaker_core import CircuitState

log = structlog.get_logger("meshgate.gateway")


async def publish_metrics(
    bus: MessageBus, gateway: GatewayServer, replica_id: str, *, interval: float = 1.0
) -> None:
    """Every `interval` seconds, publish each route's traffic since the last
    report on ``mesh.metrics.<route>`` (routes without traffic stay quiet)."""
    metrics = gateway.get_metrics()
    started = time.time()
    while True:
        await anyio.sleep(interval)
        ended = time.time()
        for route in metrics.route_names():
            versions = {v: m for v, m in metrics.take_interval(route).items() if m.requests}
            if not versions:
                continue
            report = MetricsReport(
                route=route,
                replica=replica_id,
                interval_start=started,
                interval_end=ended,
                versions=versions,
            )
            try:
                await bus.publish(bus.subjects.metrics(route), report)
            except Exception as error:
                log.warning("metrics.publish_failed", route=route, error=repr(error))
        started = ended


class CircuitBroadcaster:
    """Publishes breaker transitions. The breaker tells it synchronously, in
    the middle of a request; the message goes out from a task of its own, so
    a slow bus never delays a request (past `capacity` queued, it drops and
    says so)."""

    def __init__(self, bus: MessageBus, replica_id: str, *, capacity: int = 1024) -> None:
        self._bus = bus
        self._replica_id = replica_id
        self._send, self._receive = anyio.create_memory_object_stream[CircuitEvent](capacity)

    def on_transition(
        self, runtime: RouteRuntime, from_state: CircuitState, to_state: CircuitState
    ) -> None:
        breaker = runtime.breaker
        assert breaker is not None
        snapshot = breaker.snapshot(time.monotonic(), time.time())
        event = CircuitEvent(
            route=runtime.name,
            from_state=from_state.value,
            to_state=to_state.value,
            replica=self._replica_id,
            reset_deadline=snapshot.reset_deadline,
            generation=snapshot.generation,
            reopens=snapshot.reopens,
            at=time.time(),
        )
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            log.warning("circuit.broadcast_dropped", route=runtime.name, to_state=to_state.value)

    async def run(self) -> None:
        async with self._receive:
            async for event in self._receive:
                try:
                    await self._bus.publish(self._bus.subjects.circuit_events(event.route), event)
                except Exception as error:
                    log.warning("circuit.publish_failed", route=event.route, error=repr(error))
