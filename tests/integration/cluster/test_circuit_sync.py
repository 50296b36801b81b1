"""Shared circuits across in-process replicas on a real nats-server: one
replica opens, the others adopt at once with the same deadline, one replica
probes for all, and its verdict closes (or reopens) the circuit everywhere."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from gateway_node.circuit_protocol import probing_replica
from meshgate.bus.messages import CircuitEvent
from meshgate.bus.nats_server import NatsServer
from meshgate.resilience.breaker_core import BreakerCore, CircuitState
from tests.integration.cluster.conftest import Parts, Replica, cluster, recorded, replica
from tests.integration.gateway_http.conftest import Backend
from tests.polling import eventually

pytestmark = pytest.mark.anyio

ROUTE = "pay"
RESET_TIMEOUT = 0.4


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    await server.start()
    yield server
    await server.stop()


def config(backend: Backend) -> dict[str, Any]:
    return {
        "routes": [
            {
                "name": ROUTE,
                "path": "/pay/**",
                "strip_prefix": "/pay",
                "upstreams": [f"127.0.0.1:{backend.port}"],
                "circuit_breaker": {"failure_threshold": 3, "reset_timeout": RESET_TIMEOUT},
                "retry": {"max_attempts": 1},
            }
        ]
    }


def breaker(replica: Replica) -> BreakerCore:
    runtime = replica.gateway.route_runtime(ROUTE)
    assert runtime is not None
    assert runtime.breaker is not None
    return runtime.breaker


def deadline(replica: Replica) -> float | None:
    return breaker(replica).snapshot(time.monotonic(), time.time()).reset_deadline


async def trip(replica: Replica) -> None:
    for _ in range(3):
        assert (await replica.client.get("/pay/status/500")).status_code == 500
    assert breaker(replica).state is CircuitState.OPEN


async def until_deadline_passed(replica: Replica) -> None:
    await anyio.sleep(max(0.0, breaker(replica).open_until - time.monotonic()) + 0.02)


async def test_an_open_circuit_is_adopted_at_once_with_the_same_deadline_and_one_probe_closes_it(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    parts = Parts(circuits=True, probe_grace=5.0)
    async with cluster(nats_server.url, prefix, ["gw-a", "gw-b"], config(backend), parts) as (
        a,
        b,
    ):
        events = await recorded(a.bus, a.bus.subjects.all_circuit_events, CircuitEvent)
        await trip(a)
        await eventually(lambda: breaker(b).state is CircuitState.OPEN, within=1.0)
        assert b.opened_at[0] - a.opened_at[0] < 0.050
        assert deadline(b) == pytest.approx(deadline(a), abs=0.002)
        assert breaker(b).generation == breaker(a).generation

        prober_id = probing_replica(ROUTE, breaker(a).generation, ["gw-a", "gw-b"])
        prober, waiter = (a, b) if prober_id == "gw-a" else (b, a)
        await until_deadline_passed(a)
        before = len(backend.requests)
        held = await waiter.client.get("/pay/hello")
        assert held.status_code == 503  # waits for the prober's verdict
        assert len(backend.requests) == before
        probe = await prober.client.get("/pay/hello")
        assert probe.status_code == 200
        await eventually(lambda: breaker(waiter).state is CircuitState.CLOSED, within=1.0)
        assert len(backend.requests) == before + 1  # one probe for the cluster
        assert breaker(waiter).generation == breaker(prober).generation
        assert (await waiter.client.get("/pay/hello")).status_code == 200

        await anyio.sleep(0.1)
        moves = [(e.replica, e.to_state) for e in events]
        # No echoes: the waiter published nothing, having only adopted.
        assert moves == [
            (a.id, "open"),
            (prober.id, "half-open"),
            (prober.id, "closed"),
        ]


async def test_a_failed_probe_reopens_the_circuit_everywhere_with_the_backoff(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    parts = Parts(circuits=True, probe_grace=5.0)
    async with cluster(nats_server.url, prefix, ["gw-a", "gw-b"], config(backend), parts) as (
        a,
        b,
    ):
        await trip(a)
        await eventually(lambda: breaker(b).state is CircuitState.OPEN, within=1.0)
        prober_id = probing_replica(ROUTE, breaker(a).generation, ["gw-a", "gw-b"])
        prober, waiter = (a, b) if prober_id == "gw-a" else (b, a)
        first_generation = breaker(a).generation
        await until_deadline_passed(a)
        assert (await prober.client.get("/pay/status/500")).status_code == 500
        assert breaker(prober).state is CircuitState.OPEN
        assert breaker(prober).reopens == 1
        await eventually(lambda: breaker(waiter).generation == first_generation + 2, within=1.0)
        assert breaker(waiter).state is CircuitState.OPEN
        assert breaker(waiter).reopens == 1
        assert deadline(waiter) == pytest.approx(deadline(prober), abs=0.002)


async def test_when_the_prober_gets_no_traffic_another_replica_probes_after_the_grace(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    parts = Parts(circuits=True, probe_grace=0.3)
    async with cluster(nats_server.url, prefix, ["gw-a", "gw-b"], config(backend), parts) as (
        a,
        b,
    ):
        await trip(a)
        await eventually(lambda: breaker(b).state is CircuitState.OPEN, within=1.0)
        prober_id = probing_replica(ROUTE, breaker(a).generation, ["gw-a", "gw-b"])
        waiter = b if prober_id == "gw-a" else a
        prober = a if waiter is b else b
        await until_deadline_passed(a)
        assert (await waiter.client.get("/pay/hello")).status_code == 503
        await anyio.sleep(parts.probe_grace)
        assert (await waiter.client.get("/pay/hello")).status_code == 200
        await eventually(lambda: breaker(prober).state is CircuitState.CLOSED, within=1.0)


async def test_a_replica_that_starts_late_learns_the_open_circuit_from_a_peer(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    parts = Parts(circuits=True)
    async with cluster(nats_server.url, prefix, ["gw-a", "gw-b"], config(backend), parts) as (
        a,
        _,
    ):
        await trip(a)
        async with replica(nats_server.url, prefix, "gw-c", config(backend), parts) as late:
            assert breaker(late).state is CircuitState.OPEN
            assert breaker(late).generation == breaker(a).generation
            assert deadline(late) == pytest.approx(deadline(a), abs=0.002)
            assert (await late.client.get("/pay/hello")).status_code == 503


async def test_a_late_replica_catches_up_on_generations_of_closed_circuits(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    parts = Parts(circuits=True, probe_grace=0.0)
    async with cluster(nats_server.url, prefix, ["gw-a"], config(backend), parts) as (a,):
        await trip(a)
        await until_deadline_passed(a)
        assert (await a.client.get("/pay/hello")).status_code == 200
        assert breaker(a).state is CircuitState.CLOSED
        async with replica(nats_server.url, prefix, "gw-b", config(backend), parts) as late:
            assert breaker(late).state is CircuitState.CLOSED
            assert breaker(late).generation == breaker(a).generation == 3
