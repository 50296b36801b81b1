"""Draining: in-flight requests finish, idle connections close, new ones
are refused, stragglers are cut at the deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from meshgate.gateway.http import HttpServer, Request, Responder

from .conftest import RawClient, status_of

pytestmark = pytest.mark.anyio

Clients = Callable[[int], Awaitable[RawClient]]


async def test_drain_lets_in_flight_requests_finish_and_refuses_new_connections(
    clients: Clients,
) -> None:
    entered = asyncio.Event()

    async def slow(request: Request, responder: Responder) -> None:
        if request.path == "/slow":
            entered.set()
            await asyncio.sleep(0.3)
        await responder.send(200, b"done")

    server = HttpServer(slow)
    await server.start("127.0.0.1", 0)
    port = server.bound[0][1]
    busy = await clients(port)
    idle = await clients(port)
    assert (await idle.request("GET", "/warm")).status == 200
    await busy.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.wait_for(entered.wait(), 2)

    draining = asyncio.ensure_future(server.drain(5.0))
    # the idle keep-alive connection is closed at once
    assert await idle.is_closed_by_peer(seconds=1.0)
    # nobody listens any more
    with pytest.raises(ConnectionRefusedError):
        await RawClient.connect(port)
    # the request in flight completes, told that the connection closes
    answer = await busy.read_to_close()
    assert status_of(answer) == 200
    assert answer.endswith(b"done")
    assert b"Connection: close" in answer
    await asyncio.wait_for(draining, 2)
    assert server.active_connections == 0
    assert server.in_flight == 0


async def test_drain_cuts_requests_still_running_at_the_deadline(clients: Clients) -> None:
    cancelled = asyncio.Event()

    async def stuck(request: Request, responder: Responder) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = HttpServer(stuck)
    await server.start("127.0.0.1", 0)
    client = await clients(server.bound[0][1])
    await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await server.drain(0.2)
    assert 0.15 <= time.monotonic() - started < 2.0
    assert cancelled.is_set()
    assert await client.read_to_close() == b""
    assert server.active_connections == 0
