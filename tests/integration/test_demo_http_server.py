"""The demo services' HTTP/1.1 server on real loopback sockets, spoken to with
h11 as the client so that framing, keep-alive and closing are seen exactly
as they go over the wire. Runs under both anyio backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import h11
import pytest

from services.http_server import Handler, HttpServer, Request, Response

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> Response:
    return Response.json(
        200,
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
            "client": request.client_host,
        },
    )


@asynccontextmanager
async def serving(
    handler: Handler = echo, *, max_body_bytes: int = 1 << 20, idle_timeout: float = 75.0
) -> AsyncIterator[HttpServer]:
    server = HttpServer(
        handler,
        host="127.0.0.1",
        port=0,
        max_body_bytes=max_body_bytes,
        idle_timeout=idle_timeout,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


class Client:
    """One client connection, speaking h11."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, *events: h11.Event) -> None:
        for event in events:
            data = self.h11.send(event)
            if data:
                await self.stream.send(data)

    async def next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = await self.stream.receive()
            except anyio.EndOfStream:
                data = b""
            self.h11.receive_data(data)

    async def response(self) -> tuple[h11.Response, bytes]:
        head = await self.next_event()
        while isinstance(head, h11.InformationalResponse):
            head = await self.next_event()
        assert isinstance(head, h11.Response), head
        body = b""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return head, body
            else:
                raise AssertionError(f"unexpected {event!r}")

    async def get(
        self,
        target: str,
        *,
        method: str = "GET",
        body: bytes = b"",
        extra: Sequence[tuple[str, str]] = (),
    ) -> tuple[h11.Response, bytes]:
        headers = [("host", "test"), ("content-length", str(len(body))), *extra]
        await self.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())
        return await self.response()

    async def is_closed_by_server(self) -> bool:
        try:
            return await self.stream.receive() == b""
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True


@asynccontextmanager
async def connected(server: HttpServer) -> AsyncIterator[Client]:
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        yield Client(stream)


def header(response: h11.Response, name: str) -> str | None:
    for key, value in response.headers:
        if key.decode().lower() == name:
            return value.decode()
    return None


async def test_one_connection_carries_several_requests() -> None:
    async with serving() as server, connected(server) as client:
        for n in range(3):
            response, body = await client.get(f"/orders/{n}?page=2")
            assert response.status_code == 200
            assert response.reason == b"OK"
            assert header(response, "content-length") == str(len(body))
            assert json.loads(body) == {
                "method": "GET",
                "path": f"/orders/{n}",
                "query": "page=2",
                "body": "",
                "client": "127.0.0.1",
            }
            client.h11.start_next_cycle()


async def test_a_request_body_is_read_whole_whatever_its_framing() -> None:
    async with serving() as server, connected(server) as client:
        _, body = await client.get("/a", method="POST", body=b"x" * 100_000)
        assert json.loads(body)["body"] == "x" * 100_000
        client.h11.start_next_cycle()
        await client.send(
            h11.Request(
                method="POST",
                target="/b",
                headers=[("host", "t"), ("transfer-encoding", "chunked")],
            ),
            h11.Data(data=b"hello "),
            h11.Data(data=b"world"),
            h11.EndOfMessage(),
        )
        _, body = await client.response()
        assert json.loads(body)["body"] == "hello world"


async def test_a_head_answer_has_the_length_and_no_body() -> None:
    async def same_for_all(request: Request) -> Response:
        return Response.json(200, {"hello": "world"})

    async with serving(same_for_all) as server, connected(server) as client:
        _, get_body = await client.get("/x")
        client.h11.start_next_cycle()
        response, body = await client.get("/x", method="HEAD")
        assert body == b""
        assert header(response, "content-length") == str(len(get_body))


async def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body() -> None:
    async with serving() as server, connected(server) as client:
        await client.send(
            h11.Request(
                method="POST",
                target="/upload",
                headers=[("host", "t"), ("content-length", "5"), ("expect", "100-continue")],
            )
        )
        interim = await client.next_event()
        assert isinstance(interim, h11.InformationalResponse)
        assert interim.status_code == 100
        await client.send(h11.Data(data=b"12345"), h11.EndOfMessage())
        _, body = await client.response()
        assert json.loads(body)["body"] == "12345"


async def test_a_body_over_the_limit_is_refused_with_413_and_the_connection_closes() -> None:
    async with serving(max_body_bytes=1000) as server, connected(server) as client:
        response, body = await client.get("/big", method="POST", body=b"y" * 5000)
        assert response.status_code == 413
        assert json.loads(body) == {"error": "request body too large"}
        assert header(response, "connection") == "close"
        assert await client.is_closed_by_server()


async def test_garbage_is_refused_with_400() -> None:
    async with serving() as server, connected(server) as client:
        await client.stream.send(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        with anyio.fail_after(5):
            while chunk := await _receive_or_empty(client.stream):
                data += chunk
        assert data.startswith(b"HTTP/1.1 400 ")


async def _receive_or_empty(stream: anyio.abc.SocketStream) -> bytes:
    try:
        return await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return b""


async def test_a_handler_that_raises_is_a_500_and_the_server_goes_on() -> None:
    async def broken(request: Request) -> Response:
        if request.path == "/boom":
            raise RuntimeError("kaput")
        return await echo(request)

    async with serving(broken) as server, connected(server) as client:
        response, body = await client.get("/boom")
        assert response.status_code == 500
        assert "kaput" in json.loads(body)["error"]
        client.h11.start_next_cycle()
        response, _ = await client.get("/fine")
        assert response.status_code == 200


async def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() -> None:
    async with serving(idle_timeout=0.2) as server, connected(server) as client:
        await client.get("/once")
        with anyio.fail_after(5):
            assert await client.is_closed_by_server()


async def test_drain_lets_the_request_in_flight_finish_then_stops() -> None:
    release = anyio.Event()
    started = anyio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await release.wait()
        return Response.json(200, {"done": True})

    server = HttpServer(slow, host="127.0.0.1", port=0)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        answers: list[tuple[h11.Response, bytes]] = []

        async def call() -> None:
            async with connected(server) as client:
                answers.append(await client.get("/slow"))

        tg.start_soon(call)
        await started.wait()
        assert server.in_flight == 1
        async with anyio.create_task_group() as draining:
            draining.start_soon(server.drain, 5.0)
            await anyio.sleep(0.1)
            # no longer accepting, still answering the request in flight
            with pytest.raises(OSError, match="connection attempts failed") as refused:
                await anyio.connect_tcp("127.0.0.1", server.port)
            assert isinstance(refused.value.__cause__, ConnectionRefusedError)
            release.set()
    [(response, body)] = answers
    assert response.status_code == 200
    assert json.loads(body) == {"done": True}
    assert header(response, "connection") == "close"


async def test_drain_gives_up_on_a_request_that_outlasts_the_grace() -> None:
    started = anyio.Event()

    async def stuck(request: Request) -> Response:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    server = HttpServer(stuck, host="127.0.0.1", port=0)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)

        async def call() -> None:
            async with connected(server) as client:
                await client.get("/stuck")

        tg.start_soon(call)
        with anyio.fail_after(5):
            await started.wait()
            await server.drain(0.1)
        tg.cancel_scope.cancel()
