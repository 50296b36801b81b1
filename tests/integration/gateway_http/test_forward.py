"""`forward` against a real upstream: methods, framing both ways, keep-alive
reuse, header rewriting, request ids."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from meshgate.gateway.http import (
    Request,
    Responder,
    ServerLimits,
    UpstreamConnectError,
    UpstreamPool,
    forward,
)

from .conftest import Backend, RawClient, closed_port, proxy_to, running_server

pytestmark = pytest.mark.anyio

Clients = Callable[[int], Awaitable[RawClient]]


async def test_get_is_forwarded_and_answered(backend: Backend, clients: Clients) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        reply = await client.request("GET", "/users/7?full=1")
    assert reply.status == 200
    assert reply.body == b"ok /users/7"
    assert backend.requests[0].method == "GET"
    assert backend.requests[0].target == "/users/7?full=1"


async def test_post_body_with_content_length_reaches_the_upstream(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        reply = await client.request("POST", "/sink", body=b"a" * 100_000)
    assert reply.status == 200
    assert reply.body == b"100000"
    assert backend.requests[0].header("content-length") == "100000"
    assert backend.requests[0].header("transfer-encoding") is None


async def test_keep_alive_connections_are_reused_both_sides(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, pool):
        client = await clients(gateway.port)
        for index in range(20):
            reply = await client.request("GET", f"/n/{index}")
            assert reply.body == f"ok /n/{index}".encode()
        assert gateway.server.active_connections == 1
        assert pool.stats.connects == 1
        assert pool.stats.reuses == 19
    assert backend.connections == 1


async def test_concurrent_clients_share_a_bounded_set_of_upstream_connections(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, pool):

        async def one_client() -> None:
            client = await clients(gateway.port)
            for _ in range(10):
                assert (await client.request("GET", "/x")).status == 200

        await asyncio.gather(*(one_client() for _ in range(8)))
        assert pool.stats.connects <= 8
        assert pool.stats.active == 0
        assert pool.stats.idle == pool.stats.connects
    assert len(backend.requests) == 80


async def test_chunked_request_body_is_streamed_upstream_chunked(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        await client.send(
            b"POST /sink HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        await asyncio.sleep(0.05)  # the upstream request starts before the body ends
        await client.send(b"6\r\n world\r\n0\r\n\r\n")
        reply = await client.response()
    assert reply.body == b"11"
    assert backend.requests[0].header("transfer-encoding") == "chunked"
    assert backend.requests[0].header("content-length") is None


async def test_chunked_request_that_arrived_whole_is_sent_with_a_length(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        await client.send(
            b"POST /sink HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )
        reply = await client.response()
    assert reply.body == b"5"
    assert backend.requests[0].header("content-length") == "5"


async def test_chunked_response_is_relayed_chunked(backend: Backend, clients: Clients) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        reply = await client.request("GET", "/chunked?n=4")
    assert reply.status == 200
    assert reply.body == b"part0;part1;part2;part3;"
    # whole before the relay began, or streamed: either way framed correctly
    assert (reply.header("transfer-encoding") == "chunked") != (
        reply.header("content-length") is not None
    )


async def test_full_duplex_echo_streams_both_ways_at_once(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        # the echo's head and first bytes come back before the request body ends
        head = await asyncio.wait_for(client.reader.readuntil(b"abc"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        await client.send(b"3\r\ndef\r\n0\r\n\r\n")
        rest = await asyncio.wait_for(client.reader.readuntil(b"0\r\n\r\n"), 5)
        assert b"def" in rest


async def test_head_response_has_headers_but_no_body(backend: Backend, clients: Clients) -> None:
    async with proxy_to(backend) as (gateway, pool):
        client = await clients(gateway.port)
        reply = await client.request("HEAD", "/thing")
        assert reply.status == 200
        assert reply.body == b""
        assert reply.header("content-length") == str(len(b"ok /thing"))
        # the connections on both sides stay usable
        follow_up = await client.request("GET", "/after")
        assert follow_up.body == b"ok /after"
        assert pool.stats.connects == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_are_relayed_without_body(
    backend: Backend, clients: Clients, status: int
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        reply = await client.request("GET", f"/status/{status}")
        assert reply.status == status
        assert reply.body == b""
        assert reply.header("transfer-encoding") is None
        assert (await client.request("GET", "/next")).body == b"ok /next"


async def test_hop_by_hop_request_headers_are_removed(backend: Backend, clients: Clients) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        await client.request(
            "GET",
            "/headers",
            [
                ("Connection", "keep-alive, X-Drop-Me"),
                ("X-Drop-Me", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Upgrade", "websocket"),
                ("X-Kept", "yes"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                ("tracestate", "vendor=1"),
            ],
        )
    seen = backend.requests[0]
    for name in (
        "connection",
        "x-drop-me",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "upgrade",
    ):
        assert seen.header(name) is None, name
    assert seen.header("x-kept") == "yes"
    assert seen.header("traceparent") == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert seen.header("tracestate") == "vendor=1"


async def test_hop_by_hop_response_headers_are_removed(backend: Backend, clients: Clients) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        reply = await client.request("GET", "/hop")
    assert reply.body == b"hop"
    names = {name for name, _ in reply.headers}
    assert not names & {
        "x-upstream-secret",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
        "connection",
    }
    assert reply.header("x-kept") == "yes"


async def test_forwarding_headers_are_added(backend: Backend, clients: Clients) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        await client.request(
            "GET",
            "/headers",
            [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "spoofed")],
        )
    seen = backend.requests[0]
    assert seen.header("host") == "gateway.test"
    assert seen.header("x-forwarded-for") == "203.0.113.9, 127.0.0.1"
    assert seen.header("x-forwarded-proto") == "http"
    assert seen.header("x-forwarded-host") == "gateway.test"
    assert seen.header("forwarded") == "for=127.0.0.1;proto=http;host=gateway.test"
    assert seen.header("expect") is None


async def test_request_id_is_generated_and_sent_both_ways(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        reply = await client.request("GET", "/a")
    request_id = reply.header("x-request-id")
    assert request_id is not None
    assert len(request_id) == 32
    assert backend.requests[0].header("x-request-id") == request_id
    assert gateway.access[0].request_id == request_id


async def test_a_sane_client_request_id_is_kept_and_an_insane_one_replaced(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        kept = await client.request("GET", "/a", [("X-Request-Id", "client-id-1")])
        replaced = await client.request("GET", "/b", [("X-Request-Id", "x" * 129)])
    assert kept.header("x-request-id") == "client-id-1"
    assert backend.requests[0].all("x-request-id") == ["client-id-1"]
    assert replaced.header("x-request-id") != "x" * 129
    assert backend.requests[1].all("x-request-id") == [replaced.header("x-request-id")]


async def test_extra_headers_replace_headers_of_the_same_name(
    backend: Backend, clients: Clients
) -> None:
    pool = UpstreamPool("127.0.0.1", backend.port)

    async def relay(request: Request, responder: Responder) -> None:
        await forward(
            request,
            responder,
            pool,
            target=b"/headers",
            response_timeout=5.0,
            extra_headers=[(b"Host", b"users.internal"), (b"X-Route", b"users")],
        )

    async with running_server(relay) as gateway:
        client = await clients(gateway.port)
        await client.request("GET", "/public/users")
    await pool.close()
    seen = backend.requests[0]
    assert seen.target == "/headers"
    assert seen.all("host") == ["users.internal"]
    assert seen.header("x-route") == "users"
    assert seen.header("x-forwarded-host") == "gateway.test"


async def test_upstream_connection_close_is_honoured(backend: Backend, clients: Clients) -> None:
    async with proxy_to(backend) as (gateway, pool):
        client = await clients(gateway.port)
        assert (await client.request("GET", "/close")).body == b"bye"
        assert (await client.request("GET", "/again")).body == b"ok /again"
        assert pool.stats.connects == 2
        # the client's connection was not the upstream's business
        assert gateway.server.active_connections == 1


async def test_forward_result_reports_status_sizes_and_latency(
    backend: Backend, clients: Clients
) -> None:
    pool = UpstreamPool("127.0.0.1", backend.port)
    results = []

    async def relay(request: Request, responder: Responder) -> None:
        results.append(
            await forward(request, responder, pool, target=b"/echo", response_timeout=5.0)
        )

    async with running_server(relay) as gateway:
        client = await clients(gateway.port)
        reply = await client.request("POST", "/", body=b"z" * 5000)
    await pool.close()
    assert reply.body == b"z" * 5000
    (result,) = results
    assert result.status == 200
    assert result.bytes_in == 5000
    assert result.bytes_out == 5000
    assert result.error is None
    assert result.upstream_latency_ms >= 0


async def test_expect_100_continue_is_answered_by_the_gateway(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, _):
        client = await clients(gateway.port)
        await client.send(
            b"POST /sink HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"data")
        reply = await client.response()
    assert reply.body == b"4"
    assert backend.requests[0].header("expect") is None


async def test_streamed_body_over_the_limit_gets_413_through_forward(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend, ServerLimits(max_body_bytes=10_000)) as (gateway, _):
        client = await clients(gateway.port)
        await client.send(b"POST /sink HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            await client.send(b"1000\r\n" + b"y" * 4096 + b"\r\n")
        answer = await client.read_to_close()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer


async def test_a_received_body_can_be_forwarded_again_after_a_failed_attempt(
    backend: Backend, clients: Clients
) -> None:
    refused = UpstreamPool("127.0.0.1", closed_port())
    working = UpstreamPool("127.0.0.1", backend.port)

    async def retrying(request: Request, responder: Responder) -> None:
        for pool in (refused, working):
            try:
                await forward(request, responder, pool, target=b"/sink", response_timeout=5.0)
                return
            except UpstreamConnectError:
                assert request.body.is_replayable

    async with running_server(retrying) as gateway:
        client = await clients(gateway.port)
        reply = await client.request("POST", "/", body=b"q" * 3000)
    await refused.close()
    await working.close()
    assert reply.body == b"3000"


async def test_upstream_answering_before_the_body_is_sent_is_relayed(
    backend: Backend, clients: Clients
) -> None:
    async with proxy_to(backend) as (gateway, pool):
        client = await clients(gateway.port)
        await client.send(b"POST /early HTTP/1.1\r\nHost: g\r\nContent-Length: 1000000\r\n\r\n")
        await client.send(b"p" * 1000)
        reply = await client.response()
        assert reply.status == 413
        assert reply.body == b"too big"
        await asyncio.sleep(0.05)
        assert pool.stats.active == 0
        assert pool.stats.idle == 0
