"""Pieces of a canary cluster in one process, each on a connection of its
own: controllers that can be stopped or killed, replicas' metrics, and an
inbox of the controller's broadcasts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import msgspec

from canary_node.election import campaign
from canary_node.leader import CanaryLeader
from canary_node.leader_lease import LeaseRecord, LeaseTerms
from canary_node.lease_bucket import LeaseBucket
from canary_node.rollout_store import rollout_key
from meshgate.bus.connection import Bus
from meshgate.bus.messages import CanaryEvent, MetricsReport, VersionMetrics
from meshgate.gateway.canary_status import CanarySnapshot
from meshgate.gateway.config import GatewayConfig
from meshgate.gateway.config_file import gateway_config_from_mapping
from tests.integration.canary.conftest import Connect

LEASE_TTL = 2.0


def canary_config(*routes: str, **promotion: Any) -> GatewayConfig:
    """A gateway config with a canary route per name: 1.0.0 -> 2.0.0 from 10%,
    steps 25, 50, 100, a step a second on a two-second window."""
    options = {
        "steps": [25, 50, 100],
        "step_interval": "1s",
        "evaluation_window": "2s",
        "min_requests": 5,
        **promotion,
    }
    return gateway_config_from_mapping(
        {
            "routes": [
                {
                    "name": name,
                    "path": f"/api/{name}/**",
                    "service_name": name,
                    "canary": {
                        "stable": {"version": "1.0.0"},
                        "canary": {"version": "2.0.0", "weight": 10},
                        "promotion": options,
                    },
                }
                for name in routes
            ]
        },
        source="test",
    )


class Controller:
    """A canary controller on its own connection, running in `tg`."""

    def __init__(self, connect: Connect, name: str, config: GatewayConfig) -> None:
        self._connect = connect
        self.name = name
        self._config = config
        self._scope = anyio.CancelScope()
        self.bus: Bus | None = None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with self._scope:
            async with self._connect(self.name) as bus:
                self.bus = bus
                bucket = bus.subjects.canary_bucket
                lease = LeaseBucket(
                    bus, bucket=bucket, node_id=self.name, terms=LeaseTerms.for_ttl(LEASE_TTL)
                )
                leader = CanaryLeader(
                    bus, self._config, bucket=bucket, interval=0.1, weights_every=0.5
                )
                task_status.started()
                await campaign(lease, leader.lead)

    def stop(self) -> None:
        """As on SIGTERM: the lease is released on the way out."""
        self._scope.cancel()

    async def kill(self) -> None:
        """As on SIGKILL, seen from the others: the connection goes at once,
        the lease stays until its TTL; the task is then left to wind down."""
        assert self.bus is not None
        await self.bus.nats_client.close()


@asynccontextmanager
async def controllers(
    tg: anyio.abc.TaskGroup, connect: Connect, config: GatewayConfig, *names: str
) -> AsyncIterator[list[Controller]]:
    started = [Controller(connect, name, config) for name in names]
    for controller in started:
        await tg.start(controller.run)
    try:
        yield started
    finally:
        for controller in started:
            controller.stop()


class Broadcasts:
    """Every `CanaryEvent` seen on ``mesh.events.canary.*``."""

    def __init__(self) -> None:
        self.events: list[CanaryEvent] = []

    async def on_event(self, event: CanaryEvent) -> None:
        self.events.append(event)

    def decisions(self, route: str) -> list[CanaryEvent]:
        return [e for e in self.events if e.route == route and e.kind != "weights"]

    def kinds(self, route: str) -> list[tuple[str, float, int]]:
        return [(e.kind, e.canary_weight, e.step) for e in self.decisions(route)]

    def reminders(self, route: str) -> list[CanaryEvent]:
        return [e for e in self.events if e.route == route and e.kind == "weights"]


async def watch_broadcasts(bus: Bus) -> Broadcasts:
    broadcasts = Broadcasts()
    await bus.subscribe(bus.subjects.all_canary_events, CanaryEvent, broadcasts.on_event)
    await bus.flush()
    return broadcasts


async def report_traffic(
    bus: Bus,
    route: str,
    *,
    canary_errors: int = 0,
    replicas: tuple[str, ...] = ("gw-1", "gw-2"),
    every: float = 0.1,
) -> None:
    """What replicas would publish, until cancelled: per replica and interval,
    20 stable requests and 3 canary ones, `canary_errors` of them failed."""
    while True:
        now = anyio.current_time()
        for replica in replicas:
            report = MetricsReport(
                route=route,
                replica=replica,
                interval_start=time.time() - every,
                interval_end=time.time(),
                versions={
                    "1.0.0": VersionMetrics(requests=20, latency_sum_ms=200.0),
                    "2.0.0": VersionMetrics(requests=3, errors=canary_errors, latency_sum_ms=30.0),
                },
            )
            await bus.publish(bus.subjects.metrics(route), report)
        await anyio.sleep_until(now + every)


async def stored_snapshot(bus: Bus, route: str) -> CanarySnapshot | None:
    entry = await bus.kv_get(bus.subjects.canary_bucket, rollout_key(route))
    if entry is None or entry.value is None:
        return None
    return msgspec.json.decode(entry.value, type=CanarySnapshot)


async def lease_holder(bus: Bus) -> str | None:
    """Who holds the leader lease right now (None: nobody)."""
    entry = await bus.kv_get(bus.subjects.canary_bucket, "leader")
    if entry is None or not entry.value:
        return None
    return msgspec.json.decode(entry.value, type=LeaseRecord).holder
