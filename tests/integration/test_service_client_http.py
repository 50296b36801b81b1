"""`ServiceClient` over real sockets: loopback HTTP/1.1 servers (keep-alive,
parsed with h11), a port where nothing listens, and the whole discovery
path — `ServiceRegistry` self-checks, `DiscoveryClient`, `ServiceClient`."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import anyio.abc
import h11
import pytest
import structlog.testing

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery import (
    DiscoveryClient,
    MemoryRegistryBackend,
    ServiceClient,
    ServiceRegistry,
)
from meshgate.resilience.circuit_breaker import CircuitState

pytestmark = pytest.mark.anyio

SERVICE = "user-service"


# --- a loopback HTTP service ------------------------------------------------------


@dataclass
class HttpService:
    """Answers every request with `status` and a JSON body naming its port;
    `requests` records (method, path) of each."""

    port: int
    status: int = 200
    requests: list[tuple[str, str]] = field(default_factory=list)

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        async with stream:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    try:
                        connection.receive_data(await stream.receive())
                    except anyio.EndOfStream:
                        connection.receive_data(b"")
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    await self._answer(stream, connection, request)
                    if connection.our_state is h11.MUST_CLOSE:
                        return
                    connection.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return

    async def _answer(
        self, stream: anyio.abc.ByteStream, connection: h11.Connection, request: h11.Request
    ) -> None:
        method, path = request.method.decode(), request.target.decode()
        self.requests.append((method, path))
        status = 200 if path == "/health" and self.status < 500 else self.status
        body = json.dumps({"port": self.port}).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        await stream.send(connection.send(h11.Response(status_code=status, headers=headers)))
        await stream.send(connection.send(h11.Data(data=body)))
        await stream.send(connection.send(h11.EndOfMessage()))


@asynccontextmanager
async def serve_http(status: int = 200) -> AsyncIterator[HttpService]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    service = HttpService(port=listener.extra(anyio.abc.SocketAttribute.local_port), status=status)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        # A client that hangs up mid-conversation is its business.
        with suppress(
            anyio.BrokenResourceError, anyio.ClosedResourceError, h11.RemoteProtocolError
        ):
            await service.handle(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield service
        tg.cancel_scope.cancel()


ServeHttp = Callable[..., AbstractAsyncContextManager[HttpService]]


@pytest.fixture
def http_service() -> ServeHttp:
    """Starts a loopback HTTP service: ``async with http_service(503) as svc``."""
    return serve_http


@pytest.fixture
def dead_port() -> int:
    """A loopback port where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def registered(*ports: int) -> MemoryRegistryBackend:
    """A backend holding instances a, b, ... at the given loopback ports."""
    backend = MemoryRegistryBackend()
    for index, port in enumerate(ports):
        instance = ServiceInstance(
            id=chr(ord("a") + index), name=SERVICE, host="127.0.0.1", port=port
        )
        await backend.register(instance, ttl=3600)
    return backend


# --- tests ------------------------------------------------------------------------


async def test_a_503_from_one_instance_is_retried_on_the_other(http_service: ServeHttp) -> None:
    async with http_service(503) as failing, http_service(200) as healthy:
        backend = await registered(failing.port, healthy.port)
        async with ServiceClient(
            DiscoveryClient(backend), service_name=SERVICE, retry_delay=0
        ) as client:
            answers = [await client.get("/users") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200] * 4
    assert all(answer.json() == {"port": healthy.port} for answer in answers)
    assert healthy.requests == [("GET", "/users")] * 4
    assert failing.requests  # it was tried, and its 503s were retried elsewhere


async def test_a_post_answered_503_is_returned_not_retried(http_service: ServeHttp) -> None:
    async with http_service(503) as failing, http_service(200) as healthy:
        backend = await registered(failing.port, healthy.port)
        async with ServiceClient(
            DiscoveryClient(backend), service_name=SERVICE, retry_delay=0
        ) as client:
            answer = await client.post("/users", {"name": "John"})

    assert answer.status_code == 503
    assert failing.requests == [("POST", "/users")]
    assert healthy.requests == []


async def test_a_dead_instance_is_skipped_once_its_breaker_opens(
    http_service: ServeHttp, dead_port: int
) -> None:
    async with http_service(200) as healthy:
        backend = await registered(dead_port, healthy.port)
        async with ServiceClient(
            DiscoveryClient(backend),
            service_name=SERVICE,
            retry_delay=0,
            breaker_options={"failure_threshold": 2, "reset_timeout": 60.0},
        ) as client:
            with structlog.testing.capture_logs() as logs:
                answers = [await client.get(f"/users/{n}") for n in range(8)]

            assert client.breakers["a"].state == CircuitState.OPEN

    assert [answer.status_code for answer in answers] == [200] * 8
    assert len(healthy.requests) == 8
    retries = [entry for entry in logs if entry["event"] == "service_client.retrying"]
    # two refused connections opened the breaker; after that "a" is never chosen
    assert [entry["instance"] for entry in retries] == ["a", "a"]
    assert {entry["reason"] for entry in retries} == {"ConnectError"}


async def test_registry_self_checks_feed_discovery_and_calls_reach_only_healthy_instances(
    http_service: ServeHttp, dead_port: int
) -> None:
    backend = MemoryRegistryBackend()
    async with (
        http_service(200) as healthy,
        ServiceRegistry(
            {"name": SERVICE, "port": healthy.port, "instance_id": "live"},
            backend,
            self_check=True,
        ) as live,
        ServiceRegistry(
            {"name": SERVICE, "port": dead_port, "instance_id": "dead"},
            backend,
            self_check=True,
        ) as dead,
    ):
        await live.register()
        await dead.register()
        discovery = DiscoveryClient(backend)
        statuses = {i.id: i.status for i in await discovery.get_instances(SERVICE)}
        async with ServiceClient(discovery, service_name=SERVICE) as client:
            answers = [await client.get("/users") for _ in range(3)]

    assert statuses == {"live": InstanceStatus.UP, "dead": InstanceStatus.DOWN}
    assert [answer.json() for answer in answers] == [{"port": healthy.port}] * 3
    assert healthy.requests == [("GET", "/health")] + [("GET", "/users")] * 3
    assert await backend.get_instances(SERVICE) == []  # both left on the way out
