"""A registry node as a real process (``python -m registry_node``) on the
NATS KV backend: it serves a client, stops cleanly on SIGTERM, and a new
process finds the registrations the first one stored."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.nats_server import NatsServer
from meshgate.discovery.backends.bus_client import RegistryClient, RegistryUnavailableError
from tests.system.node_process import node, until_served
from tests.unit.discovery.backend_contract import instance

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


@asynccontextmanager
async def registry_process(
    url: str, prefix: str, log_file: Path
) -> AsyncIterator[anyio.abc.Process]:
    """``python -m registry_node`` on the NATS KV backend, writing its log to `log_file`."""
    args = ["registry_node", "--nats", url, "--backend", "nats-kv", "--prefix", prefix]
    async with node([*args, "--sweep-interval", "0.5"], log_file) as process:
        yield process


async def test_a_restarted_registry_process_recovers_its_registrations(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    log_file = tmp_path / "registry.log"
    async with await Bus.connect(nats_server.url, prefix=prefix) as bus:
        client = RegistryClient(bus, timeout=1.0)

        async with registry_process(nats_server.url, prefix, log_file) as first:
            await until_served(client)
            stored = await client.register(instance(metadata={"version": "2.0.0"}), ttl=60)
            first.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                assert await first.wait() == 0

        with pytest.raises(RegistryUnavailableError):
            await client.get_instances("user-service")

        async with registry_process(nats_server.url, prefix, log_file) as second:
            await until_served(client)
            assert await client.get_instances("user-service") == [stored]
            renewed = await client.heartbeat("user-service", "user-1")
            assert renewed is not None
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                assert await second.wait() == 0

    log = log_file.read_text()
    assert log.count("registry.started") == 2
    assert log.count("registry.stopped") == 2
    assert "backend=nats-kv" in log
