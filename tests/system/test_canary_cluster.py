"""The canary controller as real processes, with everything it works with:
nats-server, a registry node, two canary controllers (``python -m
canary_node``), a gateway replica (``python -m gateway_node``) and three
real HTTP backends, with traffic driven through the gateway.

One run shows: a healthy canary promoted step by step on the gateway's
reported traffic; a canary answering 500 to 40% of requests rolled back at
once; the leading controller killed (SIGKILL) mid-rollout and the standby
resuming at the persisted step, repeating none and skipping none; the
gateway routing by the controller's weights throughout; and ``meshgate
rollout`` driving a canary and refusing what it cannot do.

A second run, with two gateway replicas, promotes a canary step by step,
pausing and resuming it at each step through either replica's admin API
(which hands the action to the controller), and checks that both replicas
report the controller's weight and send the same users to the canary."""

from __future__ import annotations

import functools
import itertools
import json
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import msgspec
import pytest

from canary_node.leader_lease import LeaseRecord
from meshgate.bus.connection import Bus
from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import CanaryEvent
from meshgate.bus.nats_server import NatsServer
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.gateway.canary_assignment import pick_sticky
from tests.integration.gateway.conftest import closed_port
from tests.polling import eventually
from tests.system.error_rate_backend import ErrorRateBackend
from tests.system.node_process import node

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LEASE_TTL = 2.0
PROMOTION = {
    "steps": [25, 50, 75, 100],
    "step_interval": "1s",
    "evaluation_window": "2s",
    "min_requests": 5,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def canary_route(name: str, start_weight: float) -> dict[str, Any]:
    return {
        "name": name,
        "path": f"/api/{name}/**",
        "service_name": name,
        "canary": {
            "stable": {"version": "1.0.0"},
            "canary": {"version": "2.0.0", "weight": start_weight},
            # Every request comes from 127.0.0.1: a fresh draw each, not sticky by IP.
            "sticky": None,
            "promotion": PROMOTION,
        },
    }


class Broadcasts:
    def __init__(self) -> None:
        self.events: list[CanaryEvent] = []

    async def on_event(self, event: CanaryEvent) -> None:
        self.events.append(event)

    def decisions(self, route: str) -> list[tuple[str, float, int]]:
        return [
            (e.kind, e.canary_weight, e.step)
            for e in self.events
            if e.route == route and e.kind != "weights"
        ]


async def lease_holder(bus: Bus) -> str | None:
    try:
        entry = await bus.kv_get(bus.subjects.canary_bucket, "leader")
    except Exception:  # the bucket is not there yet
        return None
    if entry is None or not entry.value:
        return None
    return msgspec.json.decode(entry.value, type=LeaseRecord).holder


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float) -> None:
    with anyio.fail_after(within):
        while not await condition():  # noqa: ASYNC110 - state held by other processes
            await anyio.sleep(0.05)


async def register(registry: RegistryClient, name: str, version: str, port: int) -> None:
    instance = ServiceInstance(
        id=f"{name}-{version}",
        name=name,
        host="127.0.0.1",
        port=port,
        metadata={"version": version},
    )
    with anyio.fail_after(15):  # until the registry process answers
        while True:
            try:
                await registry.register(instance, ttl=120)
                return
            except Exception:
                await anyio.sleep(0.1)


async def drive_traffic(client: httpx.AsyncClient, routes: tuple[str, ...]) -> None:
    """Requests to each route in turn, until cancelled."""
    while True:
        for route in routes:
            try:
                await client.get(f"/api/{route}/item")
            except httpx.TransportError:
                await anyio.sleep(0.05)


async def rollout(nats: str, prefix: str, *argv: str) -> tuple[int, str]:
    command = [sys.executable, "-m", "meshgate.cli", "rollout", *argv]
    result = await anyio.run_process(
        [*command, "--nats", nats, "--prefix", prefix], cwd=REPO, check=False
    )
    return result.returncode, (result.stdout + result.stderr).decode().strip()


async def test_a_canary_cluster_promotes_rolls_back_and_survives_its_leader(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    stable, canary, bad = ErrorRateBackend(), ErrorRateBackend(), ErrorRateBackend(0.4)
    for backend in (stable, canary, bad):
        await backend.start()
    port = closed_port()
    config = tmp_path / "gateway.json"
    config.write_text(
        json.dumps(
            {
                "listen": f"127.0.0.1:{port}",
                "admin_listen": f"127.0.0.1:{closed_port()}",
                "routes": [
                    canary_route("orders", 10),
                    canary_route("payments", 20),
                    canary_route("search", 10),
                ],
            }
        )
    )
    url = nats_server.url
    bus_args = ["--nats", url, "--prefix", prefix]
    broadcasts = Broadcasts()

    def controller(name: str) -> list[str]:
        return [
            "canary_node",
            "--config",
            str(config),
            *bus_args,
            "--node-id",
            name,
            "--lease-ttl",
            str(LEASE_TTL),
            "--interval",
            "0.5",
        ]

    try:
        async with (
            await Bus.connect(url, prefix=prefix) as bus,
            node(["registry_node", *bus_args, "--backend", "memory"], tmp_path / "registry.log"),
        ):
            await bus.subscribe(bus.subjects.all_canary_events, CanaryEvent, broadcasts.on_event)
            registry = RegistryClient(bus)
            for name in ("orders", "payments", "search"):
                await register(registry, name, "1.0.0", stable.port)
            await register(registry, "orders", "2.0.0", canary.port)
            await register(registry, "search", "2.0.0", canary.port)
            await register(registry, "payments", "2.0.0", bad.port)

            async with (
                node(controller("canary-a"), tmp_path / "canary-a.log") as canary_a,
                node(controller("canary-b"), tmp_path / "canary-b.log") as canary_b,
                node(["gateway_node", "--config", str(config), *bus_args], tmp_path / "gw.log"),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
            ):
                controllers = {"canary-a": canary_a, "canary-b": canary_b}

                async def someone_leads() -> bool:
                    return await lease_holder(bus) in controllers

                await wait_for(someone_leads, within=15)
                first_leader = await lease_holder(bus)
                assert first_leader is not None
                with anyio.fail_after(20):  # the gateway serves
                    while True:
                        try:
                            if (await client.get("/api/orders/item")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await anyio.sleep(0.1)

                async with anyio.create_task_group() as traffic:
                    for _ in range(4):
                        traffic.start_soon(drive_traffic, client, ("orders", "payments"))
                    # the bad canary goes back at once
                    await eventually(lambda: bool(broadcasts.decisions("payments")), within=15)
                    # the good one steps; kill the leader halfway
                    await eventually(lambda: len(broadcasts.decisions("orders")) >= 2, within=15)
                    controllers[first_leader].send_signal(signal.SIGKILL)
                    killed_at = time.time()
                    before_kill = broadcasts.decisions("orders")
                    await eventually(
                        lambda: ("promote", 100.0, 3) in broadcasts.decisions("orders"),
                        within=30,
                    )
                    traffic.cancel_scope.cancel()
                successor = await lease_holder(bus)

                # The gateway routes by the cluster's outcome.
                canary.served.clear()
                bad.served.clear()
                stable.served.clear()
                for _ in range(20):
                    assert (await client.get("/api/orders/item")).status_code == 200
                    assert (await client.get("/api/payments/item")).status_code == 200
                assert canary.served["/api/orders"] == 20
                assert stable.served["/api/payments"] == 20
                assert bad.served["/api/payments"] == 0

                # Operators: a live rollout obeys, finished ones and unknown routes refuse.
                assert await rollout(url, prefix, "search", "pause") == (
                    0,
                    "search: paused (state paused, canary 10%, stable 90%, current_step -1)",
                )
                code, said = await rollout(url, prefix, "payments", "promote")
                assert code == 1
                assert "already rolled-back" in said
                code, said = await rollout(url, prefix, "nowhere", "pause")
                assert code == 2
                assert "has no canary" in said
                await eventually(lambda: bool(broadcasts.decisions("search")))
    finally:
        for backend in (stable, canary, bad):
            await backend.stop()

    # The healthy canary went up every step, once each, across the change of leader.
    assert broadcasts.decisions("orders") == [
        ("step", 25.0, 0),
        ("step", 50.0, 1),
        ("step", 75.0, 2),
        ("step", 100.0, 3),
        ("promote", 100.0, 3),
    ]
    assert len(before_kill) >= 2
    assert successor is not None
    assert successor != first_leader
    # The successor's first word was the persisted position, then it went on.
    resumed = [e for e in broadcasts.events if e.route == "orders" and e.at > killed_at]
    last_before = before_kill[-1]
    assert (resumed[0].kind, resumed[0].canary_weight, resumed[0].step) == (
        "weights",
        last_before[1],
        last_before[2],
    )
    # The bad canary was rolled back, with the 500s it was judged on.
    [(kind, weight, _)] = broadcasts.decisions("payments")
    assert (kind, weight) == ("rollback", 0.0)
    rollback = next(e for e in broadcasts.events if e.route == "payments" and e.kind == "rollback")
    assert rollback.stats["canary"]["error_rate"] > 20
    assert broadcasts.decisions("search") == [("pause", 10.0, -1)]
    assert time.monotonic() - started < 60


SALT_ROUTE = "orders"
"""The route the step-by-step test rolls out; sticky points are salted with it."""


def canary_share(weight: float, users: list[str]) -> int:
    """How many of `users` a replica sends to the 2.0.0 canary at `weight`:
    sticky by the X-User header, the same answer on every replica."""
    salt = f"{SALT_ROUTE}\0" + "2.0.0"  # as `CanaryEngine` salts it
    return sum(pick_sticky(user, weight, salt) == "canary" for user in users)


async def replica_canary(admin: httpx.AsyncClient) -> tuple[str, float]:
    [status] = (await admin.get("/admin/canaries", params={"route": SALT_ROUTE})).json()["canaries"]
    return status["state"], status["canary_weight"]


def decided(broadcasts: Broadcasts, kind: str, weight: float) -> Callable[[], bool]:
    """Whether the controller has broadcast decision `kind` at `weight`."""
    return lambda: (kind, weight) in [(k, w) for k, w, _ in broadcasts.decisions(SALT_ROUTE)]


async def replicas_report(admins: tuple[httpx.AsyncClient, ...], state: str, weight: float) -> bool:
    """Whether every replica's admin API reports the rollout at `state`, `weight`."""
    return [await replica_canary(admin) for admin in admins] == [(state, weight)] * len(admins)


async def test_a_canary_is_promoted_step_by_step_on_every_replica(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Two gateway processes and a controller: at each step the rollout is
    paused through one replica's admin API (which hands it to the controller),
    both replicas report the controller's weight and send exactly the sticky
    share of the same users to the canary, and the other replica's admin API
    resumes it; at the end both send everybody to the canary."""
    started = time.monotonic()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    stable, canary = ErrorRateBackend(), ErrorRateBackend()
    for backend in (stable, canary):
        await backend.start()
    route = canary_route(SALT_ROUTE, 10)
    # A user per X-User header: each one's side is fixed and computable.
    route["canary"]["sticky"] = "header:X-User"
    route["canary"]["promotion"] = {**PROMOTION, "step_interval": "1.5s"}
    ports = [(closed_port(), closed_port()) for _ in range(2)]
    configs = []
    for index, (port, admin_port) in enumerate(ports):
        config = tmp_path / f"gateway-{index}.json"
        config.write_text(
            json.dumps(
                {
                    "listen": f"127.0.0.1:{port}",
                    "admin_listen": f"127.0.0.1:{admin_port}",
                    "routes": [route],
                }
            )
        )
        configs.append(config)
    url = nats_server.url
    bus_args = ["--nats", url, "--prefix", prefix]
    controller = ["canary_node", "--config", str(configs[0]), *bus_args]
    controller += ["--node-id", "canary-a", "--lease-ttl", str(LEASE_TTL), "--interval", "0.5"]
    broadcasts = Broadcasts()
    users = [f"u{index}" for index in range(100)]

    def gateway(index: int) -> list[str]:
        return ["gateway_node", "--config", str(configs[index]), *bus_args]

    def client(port: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5)

    try:
        async with (
            await Bus.connect(url, prefix=prefix) as bus,
            node(["registry_node", *bus_args, "--backend", "memory"], tmp_path / "registry.log"),
        ):
            await bus.subscribe(bus.subjects.all_canary_events, CanaryEvent, broadcasts.on_event)
            registry = RegistryClient(bus)
            await register(registry, SALT_ROUTE, "1.0.0", stable.port)
            await register(registry, SALT_ROUTE, "2.0.0", canary.port)
            async with (
                node(gateway(0), tmp_path / "gw-0.log"),
                node(gateway(1), tmp_path / "gw-1.log"),
                client(ports[0][0]) as main_a,
                client(ports[1][0]) as main_b,
                client(ports[0][1]) as admin_a,
                client(ports[1][1]) as admin_b,
            ):
                mains, admins = (main_a, main_b), (admin_a, admin_b)
                for main in mains:  # each replica serves, with the registry's instances
                    with anyio.fail_after(20):
                        while True:
                            try:
                                if (await main.get("/api/orders/item")).status_code == 200:
                                    break
                            except httpx.TransportError:
                                pass
                            await anyio.sleep(0.1)

                async def traffic() -> None:
                    # Users outside the measured set, so the canary gets its share.
                    for count in itertools.count():
                        headers = {"X-User": f"bg{count}"}
                        try:
                            await mains[count % 2].get("/api/orders/item", headers=headers)
                        except httpx.TransportError:
                            await anyio.sleep(0.05)

                async def control(admin: httpx.AsyncClient, action: str) -> dict[str, Any]:
                    reply = await admin.post(
                        "/admin/canaries", params={"route": SALT_ROUTE, "action": action}
                    )
                    assert reply.status_code == 200, reply.text
                    body: dict[str, Any] = reply.json()
                    return body

                async with node(controller, tmp_path / "canary-a.log"):
                    for number, weight in enumerate((25.0, 50.0, 75.0)):
                        async with anyio.create_task_group() as driving:
                            for _ in range(4):
                                driving.start_soon(traffic)
                            await eventually(decided(broadcasts, "step", weight), within=15)
                            # Through one replica: the controller pauses the whole cluster.
                            paused = await control(admins[number % 2], "pause")
                            driving.cancel_scope.cancel()
                        assert (paused["acted_by"], paused["state"]) == ("controller", "paused")
                        assert paused["canary_weight"] == weight
                        await wait_for(
                            functools.partial(replicas_report, admins, "paused", weight), within=5
                        )
                        expected = canary_share(weight, users)
                        for main in mains:
                            canary.served.clear()
                            stable.served.clear()
                            for user in users:
                                headers = {"X-User": user}
                                reply = await main.get("/api/orders/item", headers=headers)
                                assert reply.status_code == 200
                            assert canary.served["/api/orders"] == expected
                            assert stable.served["/api/orders"] == len(users) - expected
                        # Through the other replica: the controller resumes it.
                        resumed = await control(admins[(number + 1) % 2], "resume")
                        assert (resumed["acted_by"], resumed["state"]) == ("controller", "active")

                    async with anyio.create_task_group() as driving:
                        for _ in range(4):
                            driving.start_soon(traffic)
                        await eventually(decided(broadcasts, "promote", 100.0), within=15)
                        driving.cancel_scope.cancel()

                    both_promoted = functools.partial(replicas_report, admins, "promoted", 100.0)
                    await wait_for(both_promoted, within=5)
                    for main in mains:
                        canary.served.clear()
                        for user in users[:20]:
                            headers = {"X-User": user}
                            assert (await main.get("/api/orders/item", headers=headers)).is_success
                        assert canary.served["/api/orders"] == 20
    finally:
        for backend in (stable, canary):
            await backend.stop()

    # Every step once, in order, each paused and resumed by hand, then promoted.
    assert [(kind, weight) for kind, weight, _ in broadcasts.decisions(SALT_ROUTE)] == [
        ("step", 25.0),
        ("pause", 25.0),
        ("resume", 25.0),
        ("step", 50.0),
        ("pause", 50.0),
        ("resume", 50.0),
        ("step", 75.0),
        ("pause", 75.0),
        ("resume", 75.0),
        ("step", 100.0),
        ("promote", 100.0),
    ]
    assert time.monotonic() - started < 30
