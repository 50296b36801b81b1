"""Fixtures of the HTTP hot-path tests: a loopback HTTP backend written
independently of the code under test (asyncio streams + h11), the gateway
server forwarding to it, and a raw client that sends exact bytes.

Everything runs on 127.0.0.1 with free ports, under both plain asyncio and
uvloop (the hot path promises both; it does not run under trio)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest

from meshgate.gateway.http import (
    AccessRecord,
    HttpServer,
    Request,
    Responder,
    ServerLimits,
    UpstreamPool,
    forward,
)


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return request.param  # type: ignore[no-any-return]


# --- the backend ------------------------------------------------------------------------


@dataclass
class SeenRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body_size: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


@dataclass
class Backend:
    """An HTTP/1.1 upstream. What it does depends on the path:

    `/echo` streams the request body back (chunked, while still reading);
    `/sink` reads the body and answers its size; `/headers` answers the
    request's method, target and headers as JSON; `/chunked?n=K` answers K
    chunks; `/big?size=N` streams N bytes; `/status/N` answers status N;
    `/hop` answers with hop-by-hop headers; `/early` answers 413 without
    reading the body; `/silent` never answers;
    `/slow?delay=S` answers after S seconds; `/close` answers with
    `Connection: close`; anything else answers `ok <path>`.
    With `drop_reused`, a connection's second request is met by a close
    without answer (a keep-alive connection the upstream gave up on).
    """

    port: int = 0
    connections: int = 0
    requests: list[SeenRequest] = field(default_factory=list)
    drop_reused: bool = False
    big_bytes_sent: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        served = 0
        try:
            while True:
                event = await self._next_event(conn, reader)
                if isinstance(event, h11.Request):
                    if self.drop_reused and served >= 1:
                        writer.transport.abort()
                        return
                    served += 1
                    await self._answer(conn, reader, writer, event)
                    if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                        return
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                    else:
                        return
                else:
                    return
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            return event

    async def _body_chunks(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> AsyncIterator[bytes]:
        while True:
            event = await self._next_event(conn, reader)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise h11.RemoteProtocolError(f"unexpected {event!r}")

    async def _answer(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
    ) -> None:
        target = request.target.decode()
        path, _, query = target.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        headers = [(k.decode().lower(), v.decode()) for k, v in request.headers.raw_items()]
        seen = SeenRequest(request.method.decode(), target, headers, 0)
        self.requests.append(seen)

        async def send(*events: Any) -> None:
            for event in events:
                if seen.method == "HEAD" and isinstance(event, h11.Data):
                    continue
                data = conn.send(event)
                if data:
                    writer.write(data)
            await writer.drain()

        if path == "/echo":
            await send(h11.Response(status_code=200, headers=[("content-type", "x/echo")]))
            async for chunk in self._body_chunks(conn, reader):
                seen.body_size += len(chunk)
                await send(h11.Data(data=chunk))
            await send(h11.EndOfMessage())
            return
        if path == "/early":
            # answer without reading the body (an upstream's early 413)
            body = b"too big"
            await send(_response(413, body, [("connection", "close")]), *_data(body))
            return
        async for chunk in self._body_chunks(conn, reader):
            seen.body_size += len(chunk)
        if path == "/silent":
            await asyncio.sleep(3600)
        if path == "/slow":
            await asyncio.sleep(float(params.get("delay", "0.2")))
        if path == "/headers":
            body = json.dumps(
                {"method": seen.method, "target": target, "headers": headers}
            ).encode()
            await send(_response(200, body, [("content-type", "application/json")]), *_data(body))
        elif path == "/sink":
            body = str(seen.body_size).encode()
            await send(_response(200, body), *_data(body))
        elif path == "/chunked":
            await send(h11.Response(status_code=200, headers=[]))
            for index in range(int(params.get("n", "3"))):
                await send(h11.Data(data=f"part{index};".encode()))
            await send(h11.EndOfMessage())
        elif path == "/big":
            size = int(params["size"])
            piece = b"x" * 65536
            await send(h11.Response(status_code=200, headers=[("content-length", str(size))]))
            while size > 0:
                await send(h11.Data(data=piece[: min(size, len(piece))]))
                self.big_bytes_sent += min(size, len(piece))
                size -= len(piece)
            await send(h11.EndOfMessage())
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            extra = [("etag", '"v1"')] if status == 304 else []
            await send(h11.Response(status_code=status, headers=extra), h11.EndOfMessage())
        elif path == "/hop":
            body = b"hop"
            hop_headers = [
                ("connection", "X-Upstream-Secret, keep-alive"),
                ("x-upstream-secret", "s3cret"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic"),
                ("trailer", "x-sum"),
                ("upgrade", "h2c"),
                ("x-kept", "yes"),
            ]
            await send(_response(200, body, hop_headers), *_data(body))
        elif path == "/close":
            body = b"bye"
            await send(_response(200, body, [("connection", "close")]), *_data(body))
        else:
            body = f"ok {path}".encode()
            await send(_response(200, body), *_data(body))


def _response(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Any:
    return h11.Response(
        status_code=status, headers=[*(headers or []), ("content-length", str(len(body)))]
    )


def _data(body: bytes) -> list[Any]:
    return [h11.Data(data=body), h11.EndOfMessage()] if body else [h11.EndOfMessage()]


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    await server.start()
    yield server
    await server.stop()


# --- the gateway under test -------------------------------------------------------------


@dataclass
class Gateway:
    server: HttpServer
    port: int
    access: list[AccessRecord]


@asynccontextmanager
async def running_server(
    handler: Callable[[Request, Responder], Awaitable[None]],
    limits: ServerLimits | None = None,
) -> AsyncIterator[Gateway]:
    """An `HttpServer` on a free port, closed afterwards."""
    access: list[AccessRecord] = []
    server = HttpServer(handler, limits=limits or ServerLimits(), access=access.append)
    await server.start("127.0.0.1", 0)
    try:
        yield Gateway(server, server.bound[0][1], access)
    finally:
        await server.close()


@asynccontextmanager
async def proxy_to(
    backend: Backend, limits: ServerLimits | None = None, response_timeout: float = 5.0
) -> AsyncIterator[tuple[Gateway, UpstreamPool]]:
    """A gateway that forwards everything to `backend`."""
    pool = UpstreamPool("127.0.0.1", backend.port)

    async def relay(request: Request, responder: Responder) -> None:
        await forward(
            request, responder, pool, target=request.raw_target, response_timeout=response_timeout
        )

    async with running_server(relay, limits) as gateway:
        try:
            yield gateway, pool
        finally:
            await pool.close()


# --- a client that speaks exact bytes ---------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """One client connection: `send` exact bytes, `response()` parses the next
    answer with h11 (strict), `read_to_close` returns what comes until EOF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._conn = h11.Connection(h11.CLIENT)
        self._buffer = b""

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Reply:
        all_headers = [("host", "gateway.test"), *(headers or [])]
        if body and not any(k.lower() == "content-length" for k, _ in all_headers):
            all_headers.append(("content-length", str(len(body))))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers)
        await self.send(head.encode() + b"\r\n" + body)
        return await self.response(head_only=method == "HEAD")

    async def response(self, *, head_only: bool = False, seconds: float = 5.0) -> Reply:
        """Parse one response off the wire (no h11 state kept across calls,
        so pipelined and interim answers are read one at a time)."""
        parser = h11.Connection(h11.CLIENT)
        parser.send(
            h11.Request(method="HEAD" if head_only else "GET", target="/", headers=[("host", "x")])
        )
        parser.send(h11.EndOfMessage())
        if self._buffer:
            parser.receive_data(self._buffer)
            self._buffer = b""
        status = 0
        headers: list[tuple[str, str]] = []
        body = bytearray()
        async with asyncio.timeout(seconds):
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    data = await self.reader.read(65536)
                    parser.receive_data(data)
                    continue
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    headers = [
                        (k.decode().lower(), v.decode()) for k, v in event.headers.raw_items()
                    ]
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise AssertionError(f"unexpected {event!r}")
        # keep bytes that belong to the next pipelined response
        self._buffer = bytes(parser.trailing_data[0])
        return Reply(status, headers, bytes(body))

    async def read_to_close(self, seconds: float = 5.0) -> bytes:
        data = self._buffer
        self._buffer = b""
        async with asyncio.timeout(seconds):
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionResetError:
                    return data
                if not chunk:
                    return data
                data += chunk

    async def is_closed_by_peer(self, seconds: float = 2.0) -> bool:
        """True once the server has closed (EOF or reset) within `seconds`."""
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    try:
                        chunk = await self.reader.read(65536)
                    except ConnectionError:
                        return True
                    if not chunk:
                        return True
        return False

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[int], Awaitable[RawClient]]]:
    """Open raw client connections; all are closed after the test."""
    opened: list[RawClient] = []

    async def open_client(port: int) -> RawClient:
        client = await RawClient.connect(port)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


def closed_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status_of(raw: bytes) -> int:
    """The status code of the first response in `raw`."""
    line = raw.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1.1 "), raw[:200]
    return int(line.split()[1])
