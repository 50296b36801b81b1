"""`HttpServer`: a small HTTP/1.1 server for the demo services, on anyio with
h11 parsing.

h11 (which httpx already depends on) does the protocol: framing by
Content-Length or chunked encoding, keep-alive, pipelining one request at a
time, ``Expect: 100-continue``. This module adds what a server needs around
it: a body-size limit (413), a 400 for what h11 refuses, a 500 when the
handler raises, an idle timeout for kept-alive connections, and a drain for
a graceful stop. Services may not use the gateway's own server (they see
only the discovery library), hence this one.

>>> async def hello(request: Request) -> Response:
...     return Response.json(200, {"path": request.path, "query": request.query})
>>> server = HttpServer(hello, host="127.0.0.1", port=0)
>>> # await task_group.start(server.serve); then GET http://127.0.0.1:{server.port}/a?b=1
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Awaitable, Callable
from contextlib import suppress
from http import HTTPStatus
from typing import Any

import anyio
import anyio.abc
import h11
import structlog

__all__ = ["Handler", "HttpServer", "Request", "Response", "is_loopback"]

_log = structlog.get_logger("meshgate.services.http")

_RECEIVE_SIZE = 65536
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """One request, its body read whole. Header names are lower case.

    >>> Request(method="GET", target="/a/b?x=1", headers=(), body=b"").path
    '/a/b'
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    client_host: str | None = None

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The query string, without its ``?`` ("" when there is none)."""
        return self.target.partition("?")[2]

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Response:
    """An answer: `status`, extra `headers`, and the `body`.
    Content-Length is added by the server."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(
        cls, status: int, payload: Any, *, headers: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        """`payload` as a JSON body.

        >>> Response.json(200, {"status": "UP"}).body
        b'{"status":"UP"}'
        """
        body = json.dumps(payload, separators=(",", ":")).encode()
        content_type = ("content-type", "application/json")
        return cls(status=status, body=body, headers=(content_type, *headers))


Handler = Callable[[Request], Awaitable[Response]]


def is_loopback(host: str | None) -> bool:
    """Whether `host` (a client address) is on this machine's loopback.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("::ffff:127.0.0.1")
    (True, True, True)
    >>> is_loopback("10.0.0.5"), is_loopback(None)
    (False, False)
    """
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class HttpServer:
    """Serves `handler` on `host`:`port` (0: a free port, read `port` once
    started) until `drain` or cancellation.

    `max_body_bytes` bounds a request body (larger ones get 413 and the
    connection closes); `idle_timeout` closes a kept-alive connection that
    sends no new request for that many seconds.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 1 << 20,
        idle_timeout: float = 75.0,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._max_body_bytes = max_body_bytes
        self._idle_timeout = idle_timeout
        self._accepting: anyio.CancelScope | None = None
        self._connections: anyio.abc.TaskGroup | None = None
        self._draining = False
        self._in_flight = 0
        # Made by `drain` (an Event needs a running event loop); set when the
        # last request in flight is answered.
        self._quiet: anyio.Event | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port it listens on (the system's choice once started with port 0)."""
        return self._port

    @property
    def in_flight(self) -> int:
        """Requests being answered now."""
        return self._in_flight

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report started (then `port` is known), and answer until
        `drain` has finished or the caller cancels."""
        if self._draining:  # drained before it started: nothing to serve
            task_status.started()
            return
        listener = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
        self._port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as connections:
            self._connections = connections
            with anyio.CancelScope() as accepting:
                self._accepting = accepting
                async with listener:
                    task_status.started()
                    await listener.serve(self._converse, task_group=connections)
            # Only `drain` stops accepting without cancelling us; it closes
            # the connections once the requests in flight are answered.

    async def drain(self, grace: float) -> None:
        """Stop accepting, let the requests in flight finish (up to `grace`
        seconds), then close every connection; `serve` returns then."""
        self._draining = True
        if self._accepting is not None:
            self._accepting.cancel()
        with anyio.move_on_after(grace):
            while self._in_flight:
                self._quiet = anyio.Event()
                await self._quiet.wait()
        if self._connections is not None:
            self._connections.cancel_scope.cancel()

    async def _converse(self, stream: anyio.abc.SocketStream) -> None:
        # A client that hangs up mid-conversation is the client's business.
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            async with stream:
                client = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
                client_host = client[0] if isinstance(client, tuple) else None
                connection = h11.Connection(h11.SERVER)
                try:
                    while await self._answer_one(stream, connection, client_host):
                        connection.start_next_cycle()
                except h11.RemoteProtocolError as error:
                    await _refuse(stream, connection, error.error_status_hint, str(error))

    async def _answer_one(
        self, stream: anyio.abc.SocketStream, connection: h11.Connection, client_host: str | None
    ) -> bool:
        """Read one request and answer it; False when the connection ends."""
        event = None
        with anyio.move_on_after(self._idle_timeout):
            event = await _next_event(stream, connection)
        if not isinstance(event, h11.Request):
            return False  # closed, or idle for too long
        body = bytearray()
        if connection.they_are_waiting_for_100_continue:
            go_on = h11.InformationalResponse(status_code=100, headers=[])
            await stream.send(connection.send(go_on))
        while True:
            part = await _next_event(stream, connection)
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > self._max_body_bytes:
                    await _refuse(stream, connection, 413, "request body too large")
                    return False
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return False  # the client closed mid-body
        request = Request(
            method=event.method.decode("ascii"),
            target=event.target.decode("ascii", "replace"),
            headers=tuple(
                (name.decode("ascii").lower(), value.decode("latin-1"))
                for name, value in event.headers
            ),
            body=bytes(body),
            client_host=client_host,
        )
        # In flight until the answer is sent, so a drain never cuts it short.
        self._in_flight += 1
        try:
            response = await self._respond(request)
            await self._send(stream, connection, request, response)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._quiet is not None:
                self._quiet.set()
        return connection.our_state is not h11.MUST_CLOSE and not self._draining

    async def _respond(self, request: Request) -> Response:
        try:
            return await self._handler(request)
        except Exception as error:
            _log.exception("http.handler_failed", method=request.method, path=request.path)
            return Response.json(500, {"error": f"handler failed: {error!r}"})

    async def _send(
        self,
        stream: anyio.abc.SocketStream,
        connection: h11.Connection,
        request: Request,
        response: Response,
    ) -> None:
        has_body = response.status not in _NO_BODY_STATUSES
        headers = list(response.headers)
        if has_body:
            headers.append(("content-length", str(len(response.body))))
        if self._draining:
            headers.append(("connection", "close"))  # tell keep-alive clients to go
        head = h11.Response(
            status_code=response.status, headers=headers, reason=_reason(response.status)
        )
        await stream.send(connection.send(head))
        # A HEAD answer has GET's Content-Length and no body.
        if has_body and request.method != "HEAD" and response.body:
            await stream.send(connection.send(h11.Data(data=response.body)))
        await stream.send(connection.send(h11.EndOfMessage()))


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


async def _next_event(stream: anyio.abc.SocketStream, connection: h11.Connection) -> Any:
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            data = b""
        connection.receive_data(data)


async def _refuse(
    stream: anyio.abc.SocketStream, connection: h11.Connection, status: int, reason: str
) -> None:
    """Answer `status` with `reason` and close, when a response may still be sent."""
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = json.dumps({"error": reason}).encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    with suppress(h11.LocalProtocolError):
        head = h11.Response(status_code=status, headers=headers, reason=_reason(status))
        await stream.send(connection.send(head))
        await stream.send(connection.send(h11.Data(data=body)))
        await stream.send(connection.send(h11.EndOfMessage()))
