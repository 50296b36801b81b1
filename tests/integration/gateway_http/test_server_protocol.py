"""The server on the wire: pipelining, 100-continue, HTTP/1.0, handler
failures, and every kind of bad input answered with its status, then closed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from meshgate.gateway.http import (
    Request,
    Responder,
    ServerLimits,
    UpstreamConnectError,
    UpstreamTimeoutError,
)

from .conftest import RawClient, running_server, status_of

pytestmark = pytest.mark.anyio

Clients = Callable[[int], Awaitable[RawClient]]


async def echo_path(request: Request, responder: Responder) -> None:
    body = await request.body.read_all()
    await responder.send(
        200,
        f"{request.method} {request.path} {request.query} {len(body)}".encode(),
        [(b"Content-Type", b"text/plain")],
    )


async def test_pipelined_requests_are_answered_in_order(clients: Clients) -> None:
    async def slow_first(request: Request, responder: Responder) -> None:
        if request.path == "/first":
            await asyncio.sleep(0.1)
        await echo_path(request, responder)

    async with running_server(slow_first) as gateway:
        client = await clients(gateway.port)
        await client.send(
            b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /third?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        replies = [await client.response() for _ in range(3)]
    assert [r.body for r in replies] == [
        b"GET /first  0",
        b"POST /second  3",
        b"GET /third x=1 0",
    ]


async def test_path_is_normalised_and_raw_target_kept(clients: Clients) -> None:
    seen: list[Request] = []

    async def record(request: Request, responder: Responder) -> None:
        seen.append(request)
        await responder.send(200, b"")

    async with running_server(record) as gateway:
        client = await clients(gateway.port)
        await client.request("GET", "/api/users/%2e%2e/admin?q=%2F")
        await client.request("GET", "http://example.com/a//b/./c")
    assert seen[0].path == "/api/admin"
    assert seen[0].raw_target == b"/api/users/%2e%2e/admin?q=%2F"
    assert seen[0].query == "q=%2F"
    assert seen[1].path == "/a/b/c"


async def test_expect_100_continue_is_sent_on_first_read_only(clients: Clients) -> None:
    async with running_server(echo_path) as gateway:
        client = await clients(gateway.port)
        await client.send(
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"hello")
        reply = await client.response()
    assert reply.body == b"POST /up  5"


async def test_no_100_continue_when_the_handler_answers_without_reading(
    clients: Clients,
) -> None:
    async def refuse(request: Request, responder: Responder) -> None:
        await responder.send_error(403, "forbidden", "no uploads")

    async with running_server(refuse) as gateway:
        client = await clients(gateway.port)
        await client.send(
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        raw = await client.read_to_close()
    assert status_of(raw) == 403
    assert b"100 Continue" not in raw
    assert b"Connection: close" in raw


async def test_unread_body_is_discarded_and_the_connection_kept(clients: Clients) -> None:
    async def ignore_body(request: Request, responder: Responder) -> None:
        await responder.send(200, b"ignored")

    async with running_server(ignore_body) as gateway:
        client = await clients(gateway.port)
        await client.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n")
        assert (await client.response()).body == b"ignored"
        await client.send(b"x" * 200_000)
        reply = await client.request("GET", "/b")
    assert reply.body == b"ignored"
    assert gateway.server.active_connections in (0, 1)


async def test_http_1_0_gets_a_close_delimited_stream(clients: Clients) -> None:
    async def stream(request: Request, responder: Responder) -> None:
        await responder.start(200, [])
        await responder.write(b"one,")
        await responder.write(b"two")
        await responder.end()

    async with running_server(stream) as gateway:
        client = await clients(gateway.port)
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        raw = await client.read_to_close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in head
    assert b"Transfer-Encoding" not in head
    assert body == b"one,two"


async def test_http_1_0_keep_alive_is_honoured(clients: Clients) -> None:
    async with running_server(echo_path) as gateway:
        client = await clients(gateway.port)
        for _ in range(2):
            await client.send(b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
            assert b"Connection: keep-alive" in head
            await client.reader.readexactly(len(b"GET /k  0"))


async def test_connection_close_request_is_closed_after_the_answer(clients: Clients) -> None:
    async with running_server(echo_path) as gateway:
        client = await clients(gateway.port)
        await client.send(b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        raw = await client.read_to_close()
    assert status_of(raw) == 200
    assert b"Connection: close" in raw


async def test_keep_alive_requests_limit_closes_the_connection(clients: Clients) -> None:
    async with running_server(echo_path, ServerLimits(keep_alive_requests=3)) as gateway:
        client = await clients(gateway.port)
        assert (await client.request("GET", "/1")).header("connection") is None
        assert (await client.request("GET", "/2")).header("connection") is None
        assert (await client.request("GET", "/3")).header("connection") == "close"
        assert await client.is_closed_by_peer()


# --- handler failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("bug"), 500),
        (UpstreamConnectError("refused"), 502),
        (UpstreamTimeoutError("slow"), 504),
    ],
)
async def test_handler_errors_become_json_answers(
    clients: Clients, error: Exception, status: int
) -> None:
    async def failing(request: Request, responder: Responder) -> None:
        raise error

    async with running_server(failing) as gateway:
        client = await clients(gateway.port)
        reply = await client.request("GET", "/boom", [("X-Request-Id", "rid-1")])
        # the server survives and keeps the connection
        second = await client.request("GET", "/boom")
    assert reply.status == status
    assert reply.header("content-type") == "application/json"
    assert reply.header("x-request-id") == "rid-1"
    assert reply.json()["status"] == status
    assert reply.json()["request_id"] == "rid-1"
    assert set(reply.json()) == {"error", "message", "status", "request_id"}
    assert second.status == status


async def test_handler_failing_mid_response_aborts_the_connection(clients: Clients) -> None:
    async def half(request: Request, responder: Responder) -> None:
        await responder.start(200, [], content_length=100)
        await responder.write(b"partial")
        raise RuntimeError("gave up")

    async with running_server(half) as gateway:
        client = await clients(gateway.port)
        await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        raw = await client.read_to_close()
    assert raw.endswith(b"partial")


async def test_handler_returning_without_answer_gets_500(clients: Clients) -> None:
    async def silent(request: Request, responder: Responder) -> None:
        return None

    async with running_server(silent) as gateway:
        client = await clients(gateway.port)
        reply = await client.request("GET", "/")
    assert reply.status == 500
    assert reply.json()["error"] == "internal_error"


async def test_client_disconnect_cancels_the_handler(clients: Clients) -> None:
    cancelled = asyncio.Event()
    entered = asyncio.Event()

    async def waits(request: Request, responder: Responder) -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with running_server(waits) as gateway:
        client = await clients(gateway.port)
        await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.wait_for(entered.wait(), 2)
        client.writer.transport.abort()
        await asyncio.wait_for(cancelled.wait(), 2)
        await asyncio.sleep(0.01)
        assert gateway.server.in_flight == 0


# --- bad input ----------------------------------------------------------------------------

BAD_REQUESTS = [
    pytest.param(b"GARBAGE\r\n\r\n", 400, id="malformed-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400, id="bad-header-name"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="missing-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
    pytest.param(b"GET /a%2fb HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="encoded-slash"),
    pytest.param(b"GET /a%5cb HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="encoded-backslash"),
    pytest.param(b"GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="encoded-nul"),
    pytest.param(b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="raw-control"),
    pytest.param(b"GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="not-a-path"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
        id="cl-and-te",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        b"0\r\n\r\n",
        400,
        id="te-and-cl",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
        id="duplicate-cl",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
        id="different-cl",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400, id="listed-cl"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        400,
        id="te-gzip-chunked",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400, id="te-identity"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
        id="bad-chunk-size",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417, id="bad-expect"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, id="http-2.0"),
    pytest.param(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, id="http-1.2"),
    pytest.param(b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, id="http-0.9"),
    pytest.param(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, id="long-url"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 17000 + b"\r\n\r\n",
        431,
        id="big-header",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(101))
        + b"\r\n",
        431,
        id="many-headers",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n", 413, id="declared-body"
    ),
]


@pytest.mark.parametrize(("raw", "status"), BAD_REQUESTS)
async def test_bad_input_is_answered_then_closed(clients: Clients, raw: bytes, status: int) -> None:
    handled: list[Request] = []

    async def handler(request: Request, responder: Responder) -> None:
        handled.append(request)
        await request.body.read_all()
        await responder.send(200, b"ok")

    async with running_server(handler, ServerLimits(max_body_bytes=10_000)) as gateway:
        client = await clients(gateway.port)
        await client.send(raw)
        answer = await client.read_to_close()
    assert status_of(answer) == status
    assert b"Connection: close" in answer
    assert b"Content-Type: application/json" in answer
    assert f'"status":{status}'.encode() in answer
    if status != 400 or b"zz" not in raw:
        assert handled == []


async def test_streamed_chunked_body_over_the_limit_gets_413(clients: Clients) -> None:
    async def handler(request: Request, responder: Responder) -> None:
        await request.body.read_all()
        await responder.send(200, b"ok")

    async with running_server(handler, ServerLimits(max_body_bytes=10_000)) as gateway:
        client = await clients(gateway.port)
        await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            await client.send(b"1000\r\n" + b"y" * 4096 + b"\r\n")
        answer = await client.read_to_close()
    assert status_of(answer) == 413
    assert b"Connection: close" in answer


async def test_bad_request_pipelined_behind_a_good_one_is_answered_after_it(
    clients: Clients,
) -> None:
    async with running_server(echo_path) as gateway:
        client = await clients(gateway.port)
        await client.send(b"GET /good HTTP/1.1\r\nHost: a\r\n\r\nBROKEN\r\n\r\n")
        first = await client.response()
        rest = await client.read_to_close()
    assert first.body == b"GET /good  0"
    assert status_of(rest) == 400


async def test_oversized_head_fed_slowly_is_refused_without_buffering_it(
    clients: Clients,
) -> None:
    async with running_server(echo_path) as gateway:
        client = await clients(gateway.port)
        await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
        # no header line ever completes: only the byte count can stop it
        for _ in range(30):
            await client.send(b"v" * 1024)
            await asyncio.sleep(0.001)
        answer = await client.read_to_close()
    assert status_of(answer) == 431
