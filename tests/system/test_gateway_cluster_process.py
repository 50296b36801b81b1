"""Three gateway replicas as real processes (``python -m gateway_node``) on
one nats-server behave as one gateway: a circuit opened on one replica is
open on the others, a route added through one replica's admin API is served
by all, and a route's rate limit holds for the three together."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.event_stream import follow_events
from meshgate.bus.messages import CircuitEvent, ConfigEvent, Presence
from meshgate.bus.nats_server import NatsServer
from tests.integration.gateway.conftest import closed_port
from tests.integration.gateway_http.conftest import Backend
from tests.polling import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
REPLICAS = ("gw-a", "gw-b", "gw-c")
LIMIT = 60  # per second, for the cluster
PRESENCE_INTERVAL = 2.0  # gateway_node.process


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_config(path: Path, backend: Backend) -> None:
    upstream = f'["127.0.0.1:{backend.port}"]'
    path.write_text(
        "[[routes]]\n"
        'name = "pay"\n'
        'path = "/pay/**"\n'
        'strip_prefix = "/pay"\n'
        f"upstreams = {upstream}\n"
        "[routes.circuit_breaker]\n"
        "failure_threshold = 3\n"
        'reset_timeout = "30s"\n'
        "[routes.retry]\n"
        "max_attempts = 1\n"
        "[[routes]]\n"
        'name = "limited"\n'
        'path = "/limited/**"\n'
        'strip_prefix = "/limited"\n'
        f"upstreams = {upstream}\n"
        "[routes.rate_limit]\n"
        f"max = {LIMIT}\n"
        'window = "1s"\n'
        'key = "route"\n'
    )


@asynccontextmanager
async def gateway_process(
    replica_id: str, config: Path, nats_url: str, prefix: str, log_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A replica process; yields clients of its proxy and its admin API."""
    port, admin_port = closed_port(), closed_port()
    args = [
        *("-m", "gateway_node", "--config", str(config)),
        *("--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}"),
        *("--nats", nats_url, "--prefix", prefix, "--replica-id", replica_id),
    ]
    with (log_dir / f"{replica_id}.log").open("ab") as log:
        process = await anyio.open_process(
            [sys.executable, *args], cwd=REPO, stdout=log, stderr=log
        )
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as proxy,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_port}", timeout=5.0) as admin,
        ):
            yield proxy, admin
    finally:
        if process.returncode is None:
            process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()


async def until_ok(client: httpx.AsyncClient, path: str) -> None:
    with anyio.fail_after(20):
        while True:
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await anyio.sleep(0.1)


async def offer(
    client: httpx.AsyncClient,
    rate: float,
    start: float,
    warm_up: float,
    end: float,
    counts: dict[int, int],
) -> None:
    """`rate` requests a second to /limited from `start` to `end`; counts the
    statuses of those sent after `warm_up`."""
    sent = 0
    while (now := time.monotonic()) < end:
        due = int((now - start) * rate)
        while sent < due:
            status = (await client.get("/limited/x")).status_code
            if now >= start + warm_up:
                counts[status] = counts.get(status, 0) + 1
            sent += 1
        await anyio.sleep(0.005)


async def test_three_replica_processes_share_circuits_routes_and_a_rate_limit(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    backend = Backend()
    await backend.start()
    config = tmp_path / "gateway.toml"
    write_config(config, backend)
    heard: set[str] = set()
    circuit_events: list[CircuitEvent] = []
    config_events: list[ConfigEvent] = []

    async def on_presence(presence: Presence) -> None:
        heard.add(presence.replica_id)

    async def on_circuit(event: CircuitEvent) -> None:
        circuit_events.append(event)

    async def on_config(event: ConfigEvent) -> None:
        config_events.append(event)

    try:
        async with AsyncExitStack() as stack:
            bus = await stack.enter_async_context(await Bus.connect(nats_server.url, prefix=prefix))
            await bus.subscribe(bus.subjects.presence, Presence, on_presence)
            await bus.subscribe(bus.subjects.all_circuit_events, CircuitEvent, on_circuit)
            await bus.subscribe(bus.subjects.config_events, ConfigEvent, on_config)
            a, b, c = [
                await stack.enter_async_context(
                    gateway_process(rid, config, nats_server.url, prefix, tmp_path)
                )
                for rid in REPLICAS
            ]
            for proxy, _ in (a, b, c):
                await until_ok(proxy, "/pay/hello")
            await eventually(lambda: heard >= set(REPLICAS), within=10)
            # Each replica has heard the others once a presence round has passed.
            await anyio.sleep(PRESENCE_INTERVAL + 0.5)

            # 1. A circuit opened on gw-a is open on gw-b and gw-c.
            for _ in range(3):
                assert (await a[0].get("/pay/status/500")).status_code == 500
            await eventually(lambda: any(e.to_state == "open" for e in circuit_events))
            seen_by_backend = len(backend.requests)
            for proxy, _ in (b, c):
                reply = await proxy.get("/pay/hello")
                assert reply.status_code == 503
                assert reply.json()["error"] == "circuit_open"
            assert len(backend.requests) == seen_by_backend
            circuits = (await b[1].get("/admin/circuits", params={"route": "pay"})).json()
            assert circuits["circuits"][0]["state"] == "open"
            await anyio.sleep(0.3)
            assert [(e.replica, e.to_state) for e in circuit_events] == [("gw-a", "open")]

            # 2. A route added through gw-a's admin API is served by all three.
            added = await a[1].post(
                "/admin/routes",
                json={
                    "name": "added",
                    "path": "/added/**",
                    "strip_prefix": "/added",
                    "upstreams": [f"127.0.0.1:{backend.port}"],
                },
            )
            assert added.status_code == 201
            for proxy, _ in (b, c):
                await until_ok(proxy, "/added/hello")
            await eventually(lambda: [e.route for e in config_events] == ["added"])

            # 3. The rate limit holds for the cluster, traffic skewed 90/5/5.
            counts: dict[int, int] = {}
            warm_up, measured = 1.5, 3.0
            start = time.monotonic()
            end = start + warm_up + measured
            async with anyio.create_task_group() as tg:
                for (proxy, _), share in zip((a, b, c), (0.9, 0.05, 0.05), strict=True):
                    tg.start_soon(offer, proxy, 2.5 * LIMIT * share, start, warm_up, end, counts)
            assert set(counts) <= {200, 429}
            assert counts.get(200, 0) == pytest.approx(LIMIT * measured, rel=0.10)

            # 4. The event stream kept what happened.
            with anyio.fail_after(5):
                kept = [e async for e in follow_events(bus, kinds={"circuit", "config"})]
            assert [type(e).__name__ for e in kept] == ["CircuitEvent", "ConfigEvent"]
    finally:
        await backend.stop()
