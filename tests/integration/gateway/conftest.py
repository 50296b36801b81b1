"""Fixtures of the gateway tests: real HTTP backends on loopback (the h11
backend of the HTTP hot-path tests), the gateway in front of them, and an
httpx client. Runs under asyncio and uvloop, as the gateway does."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from meshgate.gateway.server import GatewayServer
from tests.integration.gateway_http.conftest import Backend

__all__ = ["Backend", "closed_port", "started_gateway"]


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def backends() -> AsyncIterator[Callable[[], AbstractAsyncContextManager[Backend]]]:
    """Start as many backends as a test needs; all stop at the end."""
    started: list[Backend] = []

    @asynccontextmanager
    async def start() -> AsyncIterator[Backend]:
        backend = Backend()
        await backend.start()
        started.append(backend)
        yield backend

    yield start
    for backend in started:
        await backend.stop()


async def start_backend(backends: Any) -> Backend:
    return await backends().__aenter__()  # type: ignore[no-any-return]


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def started_gateway(gateway: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    """`gateway` on a free port, and a client whose base URL is it."""
    async with gateway.running(listen="127.0.0.1:0") as addresses:
        host, port = addresses[0]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10.0) as client:
            yield client
