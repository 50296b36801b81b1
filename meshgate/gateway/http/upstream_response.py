"""`UpstreamResponse`: the head of an upstream's answer, and its body as it
streams in."""

from __future__ import annotations

from typing import Protocol

from meshgate.gateway.http.body_stream import BodyStream
from meshgate.gateway.http.upstream_errors import UpstreamResponseTooLargeError


class ExchangeControl(Protocol):
    """The connection carrying a response, while it does."""

    def abort_exchange(self) -> None: ...


class UpstreamResponse:
    """Status and headers of an upstream response; iterate it for the body.

        response = await pool.request("GET", b"/users/1", headers, None,
                                      content_length=None, response_timeout=5.0)
        async for chunk in response:       # reading is paused while you are slow
            await responder.write(chunk)

    Consume the body, `discard()` it or `abort()`: until then the connection
    is not free. It goes back to its pool once the whole response has been
    received (and the request fully sent) on a keep-alive connection.
    """

    __slots__ = (
        "_body",
        "_control",
        "content_length",
        "header_names",
        "headers",
        "http_version",
        "is_chunked",
        "keep_alive",
        "reason",
        "status",
    )

    def __init__(
        self,
        *,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        header_names: list[bytes],
        http_version: str,
        keep_alive: bool,
        content_length: int | None,
        is_chunked: bool,
        body: BodyStream,
        control: ExchangeControl | None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        """Raw (name, value) pairs as received, hop-by-hop ones included."""
        self.header_names = header_names
        """Lower-cased names, index-aligned with `headers`."""
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.is_chunked = is_chunked
        self._body = body
        self._control = control

    def detach(self) -> None:
        """Called by the connection once it no longer carries this response."""
        self._control = None

    @property
    def is_complete(self) -> bool:
        """The whole body has been received and read."""
        return self._body.is_complete

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._body.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def take_body_if_received(self) -> bytes | None:
        """The whole body at once if it has already arrived in full, else None
        (lets a proxy answer a small response in a single write)."""
        return self._body.take_all_if_done()

    async def read_all(self, limit: int | None = None) -> bytes:
        """The whole body; `UpstreamResponseTooLargeError` past `limit` bytes
        (the connection is then aborted)."""
        chunks: list[bytes] = []
        total = 0
        async for chunk in self:
            total += len(chunk)
            if limit is not None and total > limit:
                self.abort()
                raise UpstreamResponseTooLargeError(f"response body exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def discard(self) -> None:
        """Read and drop the rest of the body, keeping the connection reusable."""
        body = self._body
        body.drop_buffered()
        while await body.next_chunk() is not None:
            pass

    def abort(self) -> None:
        """Give up on this response: its connection is closed, not reused."""
        control = self._control
        self._control = None
        if control is not None:
            control.abort_exchange()

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status} {self.reason!r}>"
