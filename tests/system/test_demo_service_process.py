"""A demo service as a real process (``python -m services`` and ``meshgate
service``) on a real nats-server: it registers, answers, takes its knobs from
the environment, and leaves the registry on SIGTERM, exiting 0.

The registry node runs in the test's process; the service does not know
or care, it only talks to the bus."""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.messages import QueryRequest, RegistryEvent
from meshgate.bus.nats_server import NatsServer
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from registry_node.service import RegistryService
from tests.polling import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


class Registry:
    """A registry node on its own prefix, and a client that hears its events."""

    def __init__(self, client: RegistryClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.events: list[RegistryEvent] = []

    async def record(self, event: RegistryEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[tuple[str, str]]:
        return [(event.kind, event.instance.id) for event in self.events]


@pytest.fixture
async def registry(nats_server: NatsServer) -> AsyncIterator[Registry]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    async with (
        await Bus.connect(nats_server.url, prefix=prefix, name="registry") as node_bus,
        await Bus.connect(nats_server.url, prefix=prefix, name="watcher") as bus,
        anyio.create_task_group() as tg,
    ):
        node = RegistryService(node_bus, MemoryRegistryBackend(), sweep_interval=0.2)
        await tg.start(node.run)
        registry = Registry(RegistryClient(bus, timeout=2.0), prefix)
        await registry.client.watch(registry.record)
        await bus.flush()
        yield registry
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    "entry_point",
    [["-m", "services"], ["-m", "meshgate.cli", "service"]],
    ids=["python -m services", "meshgate service"],
)
async def test_a_service_process_registers_serves_and_leaves_on_sigterm(
    nats_server: NatsServer, registry: Registry, tmp_path: Path, entry_point: list[str]
) -> None:
    instance_id = f"users-v1-{uuid.uuid4().hex[:6]}"
    command = [
        sys.executable,
        *entry_point,
        "user-service-v1",
        "--nats",
        nats_server.url,
        "--prefix",
        registry.prefix,
        "--port",
        "0",
        "--instance-id",
        instance_id,
        "--latency",
        "5ms",
    ]
    # A knob from the environment, as compose or a shell would set it.
    env = {**os.environ, "MESHGATE_SERVICE_ERROR_RATE": "1"}
    log_file = tmp_path / "service.log"
    with log_file.open("wb") as log:
        process = await anyio.open_process(command, cwd=REPO, stdout=log, stderr=log, env=env)
    try:
        await eventually(lambda: ("registered", instance_id) in registry.kinds(), within=20)
        [instance] = await registry.client.query(QueryRequest(service="user-service"))
        assert (instance.id, instance.tags, instance.version, instance.zone) == (
            instance_id,
            ("api", "v1"),
            "1.0.0",
            "us-east-1",
        )

        async with httpx.AsyncClient(timeout=5.0) as http:
            base = f"http://{instance.address}"
            health = await http.get(f"{base}/health")
            assert health.json()["instance"] == instance_id
            failed = await http.get(f"{base}/users/1")
            assert failed.status_code == 500
            assert failed.json()["error"] == "injected failure"
            await http.post(f"{base}/_knobs", json={"error_rate": 0})
            served = await http.get(f"{base}/users/1")
            assert (served.status_code, served.json()["instance"]) == (200, instance_id)

        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            assert await process.wait() == 0
        await eventually(lambda: ("deregistered", instance_id) in registry.kinds())
        assert await registry.client.get_instances("user-service") == []
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
    log_text = log_file.read_text()
    assert "service.stopping" in log_text
    assert "registry.deregistered" in log_text


async def test_a_bad_knob_in_the_environment_stops_the_process_at_once_naming_it(
    nats_server: NatsServer,
) -> None:
    command = [sys.executable, "-m", "services", "payment-service", "--nats", nats_server.url]
    env = {**os.environ, "MESHGATE_SERVICE_LATENCY": "50"}
    result = await anyio.run_process(command, cwd=REPO, env=env, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "meshgate service: MESHGATE_SERVICE_LATENCY: '50' needs a unit: '50ms' or '50s'"
    )


async def test_a_taken_port_stops_the_process_at_once_naming_it(nats_server: NatsServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "services",
            "payment-service",
            "--nats",
            nats_server.url,
            "--port",
            str(port),
        ]
        result = await anyio.run_process(command, cwd=REPO, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1].startswith("meshgate service: cannot listen: ")
