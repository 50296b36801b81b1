"""`UpstreamPool` failure modes, against real sockets: refused connects,
silent upstreams, stale keep-alive connections, idle expiry, and how
`forward` reports each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from meshgate.gateway.http import (
    Request,
    Responder,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    forward,
)

from .conftest import Backend, RawClient, closed_port, proxy_to, running_server

pytestmark = pytest.mark.anyio

Clients = Callable[[int], Awaitable[RawClient]]
HOST = [(b"Host", b"upstream.test")]


async def test_refused_connect_raises_connect_error_with_nothing_sent() -> None:
    pool = UpstreamPool("127.0.0.1", closed_port())
    with pytest.raises(UpstreamConnectError) as caught:
        await pool.request("GET", b"/", HOST, None, content_length=None, response_timeout=1.0)
    assert caught.value.request_sent is False
    await pool.close()


async def test_silent_upstream_raises_timeout_error(backend: Backend) -> None:
    pool = UpstreamPool("127.0.0.1", backend.port)
    with pytest.raises(UpstreamTimeoutError) as caught:
        await pool.request("GET", b"/silent", HOST, None, content_length=None, response_timeout=0.2)
    assert caught.value.request_sent is True
    assert pool.stats.active == 0
    assert pool.stats.idle == 0
    await pool.close()


async def test_gateway_answers_502_and_504_for_upstream_failures(
    backend: Backend, clients: Clients
) -> None:
    refused = UpstreamPool("127.0.0.1", closed_port())
    silent = UpstreamPool("127.0.0.1", backend.port)

    async def relay(request: Request, responder: Responder) -> None:
        pool = refused if request.path == "/refused" else silent
        await forward(request, responder, pool, target=b"/silent", response_timeout=0.2)

    async with running_server(relay) as gateway:
        client = await clients(gateway.port)
        bad_gateway = await client.request("GET", "/refused")
        timeout = await client.request("GET", "/silent")
    assert bad_gateway.status == 502
    assert bad_gateway.json()["error"] == "bad_gateway"
    assert timeout.status == 504
    assert timeout.json()["error"] == "gateway_timeout"
    await refused.close()
    await silent.close()


async def test_stale_keep_alive_connection_is_retried_transparently(backend: Backend) -> None:
    backend.drop_reused = True
    pool = UpstreamPool("127.0.0.1", backend.port)
    for index in range(3):
        response = await pool.request(
            "POST", b"/sink", HOST, b"payload", content_length=None, response_timeout=2.0
        )
        assert await response.read_all() == b"7", index
    assert pool.stats.stale_retries == 2
    assert backend.connections == 3
    assert len(backend.requests) == 3
    await pool.close()


async def test_stale_connection_is_retried_for_a_request_body_not_yet_read(
    backend: Backend, clients: Clients
) -> None:
    backend.drop_reused = True
    async with proxy_to(backend) as (gateway, pool):
        client = await clients(gateway.port)
        assert (await client.request("GET", "/warm")).status == 200
        await client.send(
            b"POST /sink HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        await asyncio.sleep(0.05)
        await client.send(b"0\r\n\r\n")
        reply = await client.response()
    assert reply.status == 200
    assert reply.body == b"3"
    assert pool.stats.stale_retries == 1


async def test_stale_connection_with_an_unreplayable_body_is_reported_closed(
    backend: Backend,
) -> None:
    backend.drop_reused = True
    pool = UpstreamPool("127.0.0.1", backend.port)
    first = await pool.request("GET", b"/a", HOST, None, content_length=None, response_timeout=2.0)
    await first.read_all()

    async def generated() -> AsyncIterator[bytes]:
        yield b"abc"

    with pytest.raises(UpstreamClosedError) as caught:
        await pool.request(
            "POST", b"/sink", HOST, generated(), content_length=None, response_timeout=2.0
        )
    assert caught.value.request_sent is True
    await pool.close()


async def test_upstream_closing_mid_body_is_reported_after_the_head() -> None:
    async def truncating(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(truncating, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1])
    response = await pool.request("GET", b"/", HOST, None, content_length=None, response_timeout=2)
    assert response.status == 200
    with pytest.raises(UpstreamClosedError):
        await response.read_all()
    await pool.close()
    server.close()


async def test_garbage_from_upstream_is_a_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP READY\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1])
    with pytest.raises(UpstreamProtocolError):
        await pool.request("GET", b"/", HOST, None, content_length=None, response_timeout=2)
    await pool.close()
    server.close()


async def test_interim_100_from_upstream_is_skipped() -> None:
    async def with_continue(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        )
        await writer.drain()

    server = await asyncio.start_server(with_continue, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1])
    response = await pool.request("GET", b"/", HOST, None, content_length=None, response_timeout=2)
    assert response.status == 201
    assert await response.read_all() == b"ok"
    await pool.close()
    server.close()


async def test_close_delimited_upstream_body_is_read_to_eof() -> None:
    async def legacy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil-")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"the-end")
        writer.close()

    server = await asyncio.start_server(legacy, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1])
    response = await pool.request("GET", b"/", HOST, None, content_length=None, response_timeout=2)
    assert await response.read_all() == b"until-the-end"
    assert response.keep_alive is False
    await asyncio.sleep(0.01)
    assert pool.stats.idle == 0
    await pool.close()
    server.close()


async def test_idle_connections_expire_and_are_capped(backend: Backend) -> None:
    pool = UpstreamPool("127.0.0.1", backend.port, max_idle=2, idle_timeout=0.2)
    responses = await asyncio.gather(
        *(
            pool.request("GET", b"/x", HOST, None, content_length=None, response_timeout=2)
            for _ in range(4)
        )
    )
    for response in responses:
        await response.read_all()
    assert pool.stats.connects == 4
    assert pool.stats.idle == 2
    await asyncio.sleep(0.35)
    assert pool.stats.idle == 0
    await pool.close()


async def test_aborted_response_does_not_return_its_connection(backend: Backend) -> None:
    pool = UpstreamPool("127.0.0.1", backend.port)
    response = await pool.request(
        "GET", b"/big?size=1000000", HOST, None, content_length=None, response_timeout=2
    )
    await response.__anext__()
    response.abort()
    await asyncio.sleep(0.01)
    assert pool.stats.idle == 0
    assert pool.stats.active == 0
    again = await pool.request("GET", b"/x", HOST, None, content_length=None, response_timeout=2)
    assert await again.read_all() == b"ok /x"
    await pool.close()


async def test_discarded_response_keeps_its_connection(backend: Backend) -> None:
    pool = UpstreamPool("127.0.0.1", backend.port)
    response = await pool.request(
        "GET", b"/big?size=300000", HOST, None, content_length=None, response_timeout=2
    )
    await response.discard()
    assert pool.stats.idle == 1
    await pool.close()


async def test_upstream_failing_mid_response_cuts_the_client_and_reports_it(
    clients: Clients,
) -> None:
    async def truncating(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst-part")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    upstream = await asyncio.start_server(truncating, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", upstream.sockets[0].getsockname()[1])
    results = []

    async def relay(request: Request, responder: Responder) -> None:
        results.append(await forward(request, responder, pool, target=b"/", response_timeout=2))

    async with running_server(relay) as gateway:
        client = await clients(gateway.port)
        await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        raw = await client.read_to_close()
    await pool.close()
    upstream.close()
    assert raw.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 1000" in raw
    assert raw.endswith(b"first-part")
    (result,) = results
    assert isinstance(result.error, UpstreamClosedError)
    assert result.status == 200
    assert result.bytes_out == len(b"first-part")
