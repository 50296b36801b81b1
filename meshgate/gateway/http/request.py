"""What a handler sees: `Request` (one parsed request, its body streaming in)
and `Responder` (how it answers, exactly once).

    async def hello(request: Request, responder: Responder) -> None:
        name = request.headers.get("x-name") or "world"
        await responder.send(200, f"hello {name}".encode(), [(b"Content-Type", b"text/plain")])

Both are plain `__slots__` classes: one of each is built per request on the
hot path. They talk to the connection through `ResponseChannel`, so this
module knows nothing of sockets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from meshgate.gateway.http.body_stream import BodyStream, ReadFlow
from meshgate.gateway.http.error_body import render_error_body
from meshgate.gateway.http.framing import CHUNKED_END, chunk_header, encode_head, status_line
from meshgate.gateway.http.headers import Headers
from meshgate.gateway.http.request_errors import BodyTooLargeError

# below this size a chunk is copied into its framing; above it the pieces go
# to the transport separately, so a large chunk is never copied
_COPY_LIMIT = 16 * 1024


class ResponseChannel(ReadFlow, Protocol):
    """The connection, as the request and its responder see it."""

    @property
    def is_write_paused(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def write_pieces(self, pieces: list[bytes]) -> None: ...

    async def drain(self) -> None: ...

    def keep_alive_after(self, request: Request) -> bool: ...

    def close_after_response(self) -> None: ...

    def send_continue(self, body: RequestBody) -> None: ...

    def abort(self) -> None: ...


class RequestBody(BodyStream):
    """The request body: an async iterable of byte chunks, read as they arrive.

    Reading applies backpressure (the connection stops reading the socket
    while more than 64 KiB wait unread). With `Expect: 100-continue`, the
    first read sends `100 Continue`. An empty body iterates nothing.

        async for chunk in request.body:
            sink.write(chunk)
        # or, bounded:
        data = await request.body.read_all(limit=1 << 20)

    Errors while reading are `RequestBodyError`s (413 over the server limit,
    408 on a stalled client, 400 on broken chunking).
    """

    __slots__ = (
        "_channel",
        "_continue_pending",
        "_taken",
        "_whole",
        "chunked",
        "length",
        "received",
    )

    def __init__(
        self,
        channel: ResponseChannel | None,
        *,
        length: int | None,
        chunked: bool,
        expect_continue: bool,
    ) -> None:
        super().__init__(channel)
        self._channel = channel
        self.length = length
        """Declared Content-Length, None for a chunked body."""
        self.chunked = chunked
        self.received = 0
        """Body bytes received from the client so far."""
        self._continue_pending = expect_continue
        self._taken = False
        self._whole: bytes | None = None

    @property
    def is_waiting_for_continue(self) -> bool:
        """The client expects `100 Continue` and nobody has read yet, so it has not been sent."""
        return self._continue_pending

    @property
    def is_consumed(self) -> bool:
        """Whether a reader has taken any of the body."""
        return self._taken

    @property
    def is_replayable(self) -> bool:
        """Whether the whole body can still be sent (again): nothing was read
        yet, or it was taken whole by `take_if_received` and is kept."""
        return self._whole is not None or not self._taken

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        if self._continue_pending:
            self._ask_for_body()
        chunk = await self.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        self._taken = True
        return chunk

    async def read_all(self, limit: int | None = None) -> bytes:
        """The whole body; `BodyTooLargeError` if it is longer than `limit`."""
        if limit is not None and self.length is not None and self.length > limit:
            raise BodyTooLargeError(f"request body of {self.length} bytes exceeds {limit}")
        if self._whole is not None:
            if limit is not None and len(self._whole) > limit:
                raise BodyTooLargeError(f"request body exceeds {limit} bytes")
            return self._whole
        chunks: list[bytes] = []
        total = 0
        async for chunk in self:
            total += len(chunk)
            if limit is not None and total > limit:
                raise BodyTooLargeError(f"request body exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def take_if_received(self) -> bytes | None:
        """The whole body if it has fully arrived and nobody iterated it,
        else None. The bytes are kept: later calls (a retry on another
        upstream) and `read_all` get them again."""
        if self._whole is not None:
            return self._whole
        if self._taken or self._continue_pending:
            return None
        body = self.take_all_if_done()
        if body is not None:
            self._taken = True
            self._whole = body
        return body

    def _ask_for_body(self) -> None:
        self._continue_pending = False
        if self._channel is not None:
            self._channel.send_continue(self)


EMPTY_BODY = RequestBody(None, length=0, chunked=False, expect_continue=False)
EMPTY_BODY.finish()


class Request:
    """One parsed incoming request. Built by the server; treat it as read-only
    apart from `body`, which you read."""

    __slots__ = (
        "body",
        "client_host",
        "client_port",
        "content_length",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "raw_target",
        "received_at",
        "request_id",
        "scheme",
    )

    def __init__(
        self,
        *,
        method: str,
        raw_target: bytes,
        path: str,
        query: str,
        headers: Headers,
        http_version: str,
        client_host: str,
        client_port: int,
        scheme: str,
        keep_alive: bool,
        body: RequestBody,
        content_length: int | None,
        request_id: str,
        received_at: float,
    ) -> None:
        self.method = method
        self.raw_target = raw_target
        """The request target exactly as received (for forwarding)."""
        self.path = path
        """Normalised path (`normalize_path`), for route matching."""
        self.query = query
        self.headers = headers
        self.http_version = http_version
        self.client_host = client_host
        self.client_port = client_port
        self.scheme = scheme
        self.keep_alive = keep_alive
        self.body = body
        self.content_length = content_length
        """Declared Content-Length; None when absent or chunked (see `body.chunked`)."""
        self.request_id = request_id
        self.received_at = received_at
        """`time.monotonic()` when the head was complete."""

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.raw_target!r} id={self.request_id}>"


Handler = Callable[[Request, "Responder"], Awaitable[None]]


class Responder:
    """Answers one request, exactly once.

    Either in one go::

        await responder.send(200, b'{"ok":true}', [(b"Content-Type", b"application/json")])

    or streamed::

        await responder.start(200, [(b"Content-Type", b"text/plain")])  # chunked
        async for piece in source:
            await responder.write(piece)    # waits while the client is slow
        await responder.end()

    Pass the body length as `content_length`, never as a header: the
    responder writes the framing headers (`Content-Length`, or chunked
    `Transfer-Encoding` for HTTP/1.1, or close-delimited for HTTP/1.0) and
    `Connection`. HEAD requests and 204/304 answers carry no body whatever is
    written.
    """

    __slots__ = (
        "_chunked",
        "_no_body",
        "_remaining",
        "_request",
        "bytes_sent",
        "channel",
        "ended",
        "started",
        "status",
    )

    def __init__(self, channel: ResponseChannel, request: Request) -> None:
        self.channel = channel
        self._request = request
        self.started = False
        self.ended = False
        self.status: int | None = None
        self.bytes_sent = 0
        """Body bytes written (framing excluded)."""
        self._chunked = False
        self._no_body = False
        self._remaining = -1

    def _head(self, status: int, headers: list[tuple[bytes, bytes]], length: int | None) -> bytes:
        if self.started:
            raise RuntimeError("the response has already started")
        if status < 200:
            raise ValueError("informational responses are the server's business")
        request = self._request
        channel = self.channel
        keep_alive = channel.keep_alive_after(request)
        is_head = request.method == "HEAD"
        if status == 204 or status == 304:
            extra = b""
            self._no_body = True
            self._remaining = 0
        elif length is not None:
            extra = b"Content-Length: %d\r\n" % length
            self._no_body = is_head
            self._remaining = length
        elif is_head:
            extra = b""
            self._no_body = True
        elif request.http_version == "1.1":
            extra = b"Transfer-Encoding: chunked\r\n"
            self._chunked = True
        else:
            # HTTP/1.0 has no chunking: the end of the body is the end of the connection
            extra = b""
            keep_alive = False
        if not keep_alive:
            extra += b"Connection: close\r\n"
            channel.close_after_response()
        elif request.http_version == "1.0":
            extra += b"Connection: keep-alive\r\n"
        head = encode_head(status_line(status), headers, extra)
        self.started = True
        self.status = status
        return head

    async def start(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        *,
        content_length: int | None = None,
    ) -> None:
        """Send the status line and headers; `content_length=None` streams
        the body chunked (HTTP/1.1) or close-delimited (HTTP/1.0)."""
        self.channel.write(self._head(status, headers, content_length))

    async def write(self, chunk: bytes) -> None:
        """Send a piece of the body; waits while the client is not reading."""
        if not self.started or self.ended:
            raise RuntimeError("write() needs a started, unfinished response")
        size = len(chunk)
        if not size or self._no_body:
            return
        if self._remaining >= 0:
            if size > self._remaining:
                raise ValueError("body longer than the declared content_length")
            self._remaining -= size
        self.bytes_sent += size
        channel = self.channel
        if not self._chunked:
            channel.write(chunk)
        elif size <= _COPY_LIMIT:
            channel.write(chunk_header(size) + chunk + b"\r\n")
        else:
            channel.write_pieces([chunk_header(size), chunk, b"\r\n"])
        if channel.is_write_paused:
            await channel.drain()

    async def end(self) -> None:
        """Finish the body. A body shorter than `content_length` cannot be
        finished: the connection is aborted and ValueError raised."""
        if not self.started:
            raise RuntimeError("end() before start()")
        if self.ended:
            return
        if self._chunked:
            self.channel.write(CHUNKED_END)
        elif self._remaining > 0 and not self._no_body:
            self.channel.abort()
            raise ValueError(f"response ended {self._remaining} bytes short of content_length")
        self.ended = True

    async def send(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """The whole response in one write."""
        head = self._head(status, headers or [], len(body))
        if self._no_body or not body:
            self.channel.write(head)
        else:
            self.bytes_sent = len(body)
            if len(body) <= _COPY_LIMIT:
                self.channel.write(head + body)
            else:
                self.channel.write_pieces([head, body])
        self._remaining = 0
        self.ended = True

    async def send_error(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """A JSON error: `{"error", "message", "status", "request_id"}`,
        with `Content-Type: application/json` and `X-Request-Id`.

            await responder.send_error(404, "not_found", "no route for /nope")
        """
        request_id = self._request.request_id
        body = render_error_body(status, error, message, request_id)
        all_headers = [
            (b"Content-Type", b"application/json"),
            (b"X-Request-Id", request_id.encode("latin-1")),
        ]
        if headers:
            all_headers.extend(headers)
        await self.send(status, body, all_headers)

    def abort(self) -> None:
        """Cut the connection: the client sees an incomplete response."""
        self.channel.abort()
