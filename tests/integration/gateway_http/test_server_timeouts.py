"""Slow and idle clients: header, body and idle timeouts (small values, so
the whole file runs in a second or two)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

import pytest

from meshgate.gateway.http import Request, Responder, ServerLimits

from .conftest import RawClient, running_server, status_of

pytestmark = pytest.mark.anyio

Clients = Callable[[int], Awaitable[RawClient]]

LIMITS = ServerLimits(header_timeout=0.3, body_timeout=0.3, idle_timeout=0.3)


async def read_body(request: Request, responder: Responder) -> None:
    body = await request.body.read_all()
    await responder.send(200, b"%d" % len(body))


async def test_slowloris_is_cut_at_the_header_timeout(clients: Clients) -> None:
    async with running_server(read_body, LIMITS) as gateway:
        client = await clients(gateway.port)
        started = time.monotonic()
        await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        answer_task = asyncio.ensure_future(client.read_to_close())
        # one header byte every 50 ms: progress, but never a complete head
        for _ in range(40):
            if answer_task.done():
                break
            with suppress(ConnectionError):
                await client.send(b"X")
            await asyncio.sleep(0.05)
        answer = await answer_task
        elapsed = time.monotonic() - started
    assert status_of(answer) == 408
    assert b"Connection: close" in answer
    assert 0.25 <= elapsed < 1.5


async def test_header_timeout_counts_from_accept_for_a_silent_new_connection(
    clients: Clients,
) -> None:
    async with running_server(read_body, LIMITS) as gateway:
        client = await clients(gateway.port)
        started = time.monotonic()
        # nothing was sent, so nothing is answered: the connection just closes
        assert await client.read_to_close() == b""
        assert 0.25 <= time.monotonic() - started < 1.5


async def test_idle_keep_alive_connection_is_closed_silently(clients: Clients) -> None:
    async with running_server(read_body, LIMITS) as gateway:
        client = await clients(gateway.port)
        assert (await client.request("GET", "/")).status == 200
        started = time.monotonic()
        assert await client.read_to_close() == b""
        assert 0.25 <= time.monotonic() - started < 1.5
        await asyncio.sleep(0.01)
        assert gateway.server.active_connections == 0


async def test_busy_keep_alive_connection_is_not_cut_by_the_idle_timeout(
    clients: Clients,
) -> None:
    async with running_server(read_body, LIMITS) as gateway:
        client = await clients(gateway.port)
        for _ in range(6):
            assert (await client.request("GET", "/")).status == 200
            await asyncio.sleep(0.1)  # 0.6 s in total, each gap under the timeout


async def test_slow_handler_is_not_cut_by_any_client_timeout(clients: Clients) -> None:
    async def slow(request: Request, responder: Responder) -> None:
        await asyncio.sleep(0.5)
        await responder.send(200, b"late")

    async with running_server(slow, LIMITS) as gateway:
        client = await clients(gateway.port)
        assert (await client.request("GET", "/")).body == b"late"


async def test_stalled_body_gets_408(clients: Clients) -> None:
    async with running_server(read_body, LIMITS) as gateway:
        client = await clients(gateway.port)
        started = time.monotonic()
        await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        answer = await client.read_to_close()
    assert status_of(answer) == 408
    assert b"Connection: close" in answer
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_body_trickling_within_the_timeout_is_accepted(clients: Clients) -> None:
    async with running_server(read_body, LIMITS) as gateway:
        client = await clients(gateway.port)
        await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        for byte in b"hello":
            await asyncio.sleep(0.1)
            await client.send(bytes([byte]))
        assert (await client.response()).body == b"5"
