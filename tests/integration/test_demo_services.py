"""Demo services in this process against a real nats-server and a registry
node on it (`RegistryService`, memory backend): what they register, what
they answer, how their knobs break them, and how they leave.

Each test has a subject prefix of its own, so tests sharing the session's
nats-server never hear each other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import QueryRequest, RegistryEvent
from meshgate.bus.nats_server import NatsServer
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from registry_node.health_checker import HealthChecker
from registry_node.service import RegistryService
from services.demo_service import DemoService
from services.settings import resolve_settings
from tests.polling import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


class Mesh:
    """A prefix of our own on the session's nats-server, a registry client
    that records every registry event, and helpers to start nodes."""

    def __init__(self, server: NatsServer, stack: AsyncExitStack, tg: anyio.abc.TaskGroup) -> None:
        self.server = server
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.stack = stack
        self.tg = tg
        self.events: list[RegistryEvent] = []
        self.client: RegistryClient | None = None
        self.services: list[DemoService] = []

    async def connect(self, name: str) -> Bus:
        bus = await Bus.connect(self.server.url, prefix=self.prefix, name=name)
        return await self.stack.enter_async_context(bus)

    async def start_registry(self) -> None:
        bus = await self.connect("registry")
        node = RegistryService(bus, MemoryRegistryBackend(), sweep_interval=0.2, node_id="r-1")
        await self.tg.start(node.run)

    async def watch(self) -> RegistryClient:
        bus = await self.connect("watcher")
        self.client = RegistryClient(bus, timeout=2.0)

        async def record(event: RegistryEvent) -> None:
            self.events.append(event)

        await self.client.watch(record)
        await bus.flush()
        return self.client

    async def start_service(self, key: str, **flags: Any) -> DemoService:
        bus = await self.connect(key)
        settings = resolve_settings(key, flags={"port": 0, **flags}, environ={})
        service = DemoService(settings, RegistryClient(bus, timeout=2.0))
        await self.tg.start(service.run)
        self.services.append(service)
        return service

    async def stop_services(self) -> None:
        """Stop the services while the registry still answers their goodbyes."""
        for service in self.services:
            await service.stop()

    async def until_status(self, service: str, status: InstanceStatus) -> None:
        """Wait until the one instance of `service` has `status` in the registry."""
        with anyio.fail_after(10):
            while True:
                [instance] = await self.instances(service)
                if instance.status is status:
                    return
                await anyio.sleep(0.05)

    async def instances(self, service: str, **filters: Any) -> tuple[ServiceInstance, ...]:
        assert self.client is not None
        return await self.client.query(QueryRequest(service=service, **filters))

    def kinds(self) -> list[tuple[str, str]]:
        return [(event.kind, event.instance.id) for event in self.events]


@pytest.fixture
async def mesh(nats_server: NatsServer) -> AsyncIterator[Mesh]:
    async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
        mesh = Mesh(nats_server, stack, tg)
        await mesh.watch()
        yield mesh
        await mesh.stop_services()
        tg.cancel_scope.cancel()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def test_services_register_who_they_are(mesh: Mesh) -> None:
    await mesh.start_registry()
    v1 = await mesh.start_service("user-service-v1", instance_id="users-v1-1")
    v2 = await mesh.start_service("user-service-v2", zone="us-east-2")

    found = {instance.tags: instance for instance in await mesh.instances("user-service")}
    first, second = found[("api", "v1")], found[("api", "v2")]
    assert first.id == "users-v1-1"
    assert (first.host, first.port) == ("127.0.0.1", v1.port)
    assert (first.zone, first.tags, first.metadata) == (
        "us-east-1",
        ("api", "v1"),
        {"version": "1.0.0"},
    )
    assert (first.health_check_path, first.health_check_interval) == ("/health", 5.0)
    assert first.status is InstanceStatus.UP
    # without --instance-id, the registry's stable default SERVICE-HOST-PORT
    assert second.id == f"user-service-127.0.0.1-{v2.port}"
    assert (second.zone, second.tags, second.version) == ("us-east-2", ("api", "v2"), "2.0.0")
    assert [i.id for i in await mesh.instances("user-service", tags=("v2",))] == [second.id]


async def test_a_service_answers_naming_the_instance_and_version_that_served(
    mesh: Mesh, http: httpx.AsyncClient
) -> None:
    await mesh.start_registry()
    await mesh.start_service("order-service-canary", instance_id="orders-canary-1")
    [instance] = await mesh.instances("order-service")

    response = await http.get(f"http://{instance.address}/orders/7", params={"expand": "items"})
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "orders-canary-1"
    assert response.json() == {
        "service": "order-service",
        "instance": "orders-canary-1",
        "version": "2.0.0",
        "zone": "us-east-1",
        "tags": ["canary"],
        "method": "GET",
        "path": "/orders/7",
        "query": "expand=items",
    }
    health = await http.get(f"http://{instance.address}/health")
    assert (health.status_code, health.json()["status"]) == (200, "UP")


async def test_the_error_rate_knob_breaks_and_mends_a_running_service(
    mesh: Mesh, http: httpx.AsyncClient
) -> None:
    await mesh.start_registry()
    service = await mesh.start_service("payment-service", error_rate=0.5)

    async def statuses(n: int) -> list[int]:
        return [(await http.get(f"{service.url}/pay/{i}")).status_code for i in range(n)]

    seeded = await statuses(40)
    assert set(seeded) == {200, 500}
    knobs = await http.post(f"{service.url}/_knobs", json={"error_rate": 1.0})
    assert knobs.json() == {"error_rate": 1.0, "latency_ms": 0.0, "fail_health": False}
    assert set(await statuses(5)) == {500}
    await http.post(f"{service.url}/_knobs", json={"error_rate": 0})
    assert set(await statuses(5)) == {200}
    stats = (await http.get(f"{service.url}/_stats")).json()
    assert stats == {"requests": 50, "failures": seeded.count(500) + 5}


async def test_the_same_instance_fails_the_same_requests_on_every_start(
    mesh: Mesh, http: httpx.AsyncClient
) -> None:
    await mesh.start_registry()
    runs = []
    for _ in range(2):
        service = await mesh.start_service(
            "product-service", error_rate=0.3, instance_id="products-1"
        )
        runs.append([(await http.get(f"{service.url}/p/{i}")).status_code for i in range(30)])
        await service.stop()
    assert runs[0] == runs[1]
    assert 500 in runs[0]


async def test_failing_health_takes_the_instance_down_in_the_registry(
    mesh: Mesh, http: httpx.AsyncClient
) -> None:
    await mesh.start_registry()
    service = await mesh.start_service("analytics-service", fail_health=True)
    health = await http.get(f"{service.url}/health")
    assert (health.status_code, health.json()["status"]) == (503, "DOWN")

    checker = HealthChecker(
        await mesh.connect("health"),
        unhealthy_threshold=1,
        healthy_threshold=1,
        default_interval=0.1,
        rescan_interval=0.2,
        services=["analytics-service"],
    )
    mesh.tg.start_soon(checker.run)

    await mesh.until_status("analytics-service", InstanceStatus.DOWN)
    await http.post(f"{service.url}/_knobs", json={"fail_health": False})
    await mesh.until_status("analytics-service", InstanceStatus.UP)


async def test_a_stopped_service_leaves_the_registry_at_once(
    mesh: Mesh, http: httpx.AsyncClient
) -> None:
    await mesh.start_registry()
    service = await mesh.start_service("user-service-v1", instance_id="users-v1-1")
    url = service.url
    await eventually(lambda: ("registered", "users-v1-1") in mesh.kinds())

    await service.stop()
    await eventually(lambda: ("deregistered", "users-v1-1") in mesh.kinds())
    assert ("expired", "users-v1-1") not in mesh.kinds()
    assert await mesh.instances("user-service") == ()
    with pytest.raises(httpx.ConnectError):
        await http.get(f"{url}/health")


async def test_a_request_in_flight_when_the_service_stops_is_still_answered(
    mesh: Mesh, http: httpx.AsyncClient
) -> None:
    await mesh.start_registry()
    service = await mesh.start_service("order-service-stable", latency=0.3)
    answers: list[httpx.Response] = []

    async def call() -> None:
        answers.append(await http.get(f"{service.url}/orders/1"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await eventually(lambda: service.app.requests == 1)
        await service.stop()
    [answer] = answers
    assert answer.status_code == 200
    assert answer.json()["version"] == "1.0.0"
    assert await mesh.instances("order-service") == ()


async def test_a_service_started_before_any_registry_registers_once_one_answers(
    mesh: Mesh,
) -> None:
    async with anyio.create_task_group() as tg:
        bus = await mesh.connect("early")
        settings = resolve_settings("product-service", flags={"port": 0}, environ={})
        service = DemoService(settings, RegistryClient(bus, timeout=0.5))
        tg.start_soon(service.run)
        await eventually(lambda: service.is_listening)
        await anyio.sleep(0.3)
        assert not service.registry.is_registered
        await mesh.start_registry()
        # the first retry comes within a second (jittered backoff from 0.5 s)
        await eventually(lambda: service.registry.is_registered, within=5)
        [instance] = await mesh.instances("product-service")
        assert instance.port == service.port
        await service.stop()
