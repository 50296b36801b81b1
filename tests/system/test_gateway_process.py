"""A gateway replica as a real process (``python -m gateway_node``) on the
bus, next to a registry node process: it routes to instances registered over
the bus (and to new ones as they register), announces its presence, publishes
per-route metrics, and leaves cleanly on SIGTERM."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import MetricsReport, Presence
from meshgate.bus.nats_server import NatsServer
from meshgate.discovery.backends.bus_client import RegistryClient
from tests.integration.gateway.conftest import closed_port
from tests.integration.gateway_http.conftest import Backend
from tests.polling import eventually
from tests.system.node_process import node

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until_ok(client: httpx.AsyncClient, path: str) -> httpx.Response:
    with anyio.fail_after(20):
        while True:
            try:
                reply = await client.get(path)
            except httpx.TransportError:
                reply = None
            if reply is not None and reply.status_code == 200:
                return reply
            await anyio.sleep(0.1)


async def test_a_gateway_process_routes_to_registered_instances_and_reports_itself(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    first, second = Backend(), Backend()
    await first.start()
    await second.start()
    port = closed_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\n'
        f'admin_listen = "127.0.0.1:{closed_port()}"\n'
        "[[routes]]\n"
        'name = "users"\n'
        'path = "/api/users/**"\n'
        'service_name = "user-service"\n'
        'strip_prefix = "/api/users"\n'
    )
    presences: list[Presence] = []
    reports: list[MetricsReport] = []
    try:
        async with (
            await Bus.connect(nats_server.url, prefix=prefix) as bus,
            node(
                [
                    "registry_node",
                    "--nats",
                    nats_server.url,
                    "--prefix",
                    prefix,
                    "--backend",
                    "memory",
                ],
                tmp_path / "registry.log",
            ),
        ):

            async def on_presence(presence: Presence) -> None:
                presences.append(presence)

            async def on_report(report: MetricsReport) -> None:
                reports.append(report)

            await bus.subscribe(bus.subjects.presence, Presence, on_presence)
            await bus.subscribe(bus.subjects.metrics("users"), MetricsReport, on_report)
            registry = RegistryClient(bus)
            with anyio.fail_after(15):
                while True:
                    try:
                        await registry.register(
                            ServiceInstance(
                                id="user-1", name="user-service", host="127.0.0.1", port=first.port
                            ),
                            ttl=60,
                        )
                        break
                    except Exception:
                        await anyio.sleep(0.1)
            async with (
                node(
                    [
                        "gateway_node",
                        "--config",
                        str(config),
                        "--nats",
                        nats_server.url,
                        "--prefix",
                        prefix,
                        "--replica-id",
                        "gw-a",
                    ],
                    tmp_path / "gateway.log",
                ) as gateway,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            ):
                reply = await until_ok(client, "/api/users/headers")
                assert reply.json()["target"] == "/headers"
                await registry.register(
                    ServiceInstance(
                        id="user-2", name="user-service", host="127.0.0.1", port=second.port
                    ),
                    ttl=60,
                )
                with anyio.fail_after(10):
                    while not second.requests:
                        await client.get("/api/users/x")
                        await anyio.sleep(0.05)
                await eventually(
                    lambda: bool(reports) and any(p.replica_id == "gw-a" for p in presences),
                    within=10,
                )
                assert reports[0].replica == "gw-a"
                assert reports[0].versions["default"].requests >= 1
                gateway.send_signal(signal.SIGTERM)
                with anyio.fail_after(10):
                    assert await gateway.wait() == 0
                await eventually(lambda: any(p.leaving for p in presences))
    finally:
        await first.stop()
        await second.stop()
