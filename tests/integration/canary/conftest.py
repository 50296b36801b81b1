"""Fixtures of the canary controller tests: a prefix (hence a canary bucket)
of each test's own on the session's nats-server, and connections to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.nats_server import NatsServer

Connect = Callable[[str], AbstractAsyncContextManager[Bus]]


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def connect(nats_server: NatsServer, prefix: str) -> Connect:
    """Open a connection of its own (as another process would), as a context."""

    @asynccontextmanager
    async def open_bus(name: str) -> AsyncIterator[Bus]:
        async with await Bus.connect(nats_server.url, prefix=prefix, name=name) as bus:
            yield bus

    return open_bus


@pytest.fixture
async def bus(connect: Connect) -> AsyncIterator[Bus]:
    async with connect("test") as bus:
        yield bus
