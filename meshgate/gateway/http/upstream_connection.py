"""`UpstreamConnection`: one keep-alive connection to an upstream, an asyncio
Protocol that writes a request and parses the response with httptools.

Rules of one exchange on it:

- The request head (with a bytes body) is written at once; a streamed body
  is pumped by a task of the exchange, concurrently with reading the
  response, so an upstream that answers while still reading (an echo, an
  early 413) neither deadlocks nor loses its answer.
- The exchange ends when the response is complete and the request fully
  sent. Only then, and only if both sides keep the connection alive, does it
  go back to the pool; a response that ends before its request was sent
  closes the connection.
- One inactivity deadline (`response_timeout`) runs while the gateway waits
  on the upstream: for the response head once the request is sent, between
  body reads while reading is not paused, and while the upstream does not
  take request bytes. Not while the gateway waits on its own client.
- A reused connection that dies before any response byte is "stale" (the
  upstream closed it while idle); the pool retries such a request once on a
  fresh connection when its body can be replayed.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol, cast

import httptools

from meshgate.gateway.http.body_stream import BodyStream
from meshgate.gateway.http.framing import CHUNKED_END, chunk_header
from meshgate.gateway.http.upstream_errors import (
    UpstreamClosedError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from meshgate.gateway.http.upstream_response import UpstreamResponse
from meshgate.gateway.http.write_pause import WritePause

_MAX_RESPONSE_HEADER_BYTES = 64 * 1024
_MAX_RESPONSE_HEADER_COUNT = 256
# below this size a body is copied into the head's write; above, sent as is
_COPY_LIMIT = 16 * 1024
# streamed body bytes kept until the upstream's first response byte, so that a
# request sent on a stale connection can be replayed on a fresh one
_REPLAY_LIMIT = 64 * 1024

_PUMP_NONE, _PUMP_WAITING_CLIENT, _PUMP_SENDING, _PUMP_DRAINING, _PUMP_DONE = range(5)


class ConnectionOwner(Protocol):
    """The pool, as its connections see it."""

    def exchange_ended(self, connection: UpstreamConnection, reusable: bool) -> None: ...

    def idle_connection_lost(self, connection: UpstreamConnection) -> None: ...


class StaleConnectionError(UpstreamClosedError):
    """A reused connection died before any byte of the response.

    `replayable` says whether the request can be sent again; for a streamed
    body, `replay` is then the body to send: the chunks already sent,
    followed by the rest of the original iterator.
    """

    def __init__(
        self,
        message: str,
        *,
        replayable: bool,
        replay: AsyncIterator[bytes] | None = None,
    ) -> None:
        super().__init__(message, request_sent=True)
        self.replayable = replayable
        self.replay = replay


class ReplayedBody:
    """Chunks already sent on a dead connection, then the rest of their iterator."""

    def __init__(self, sent: list[bytes], rest: AsyncIterator[bytes]) -> None:
        self._sent = sent
        self._rest = rest

    def __aiter__(self) -> ReplayedBody:
        return self

    async def __anext__(self) -> bytes:
        if self._sent:
            return self._sent.pop(0)
        return await anext(self._rest)


class _HeadResponseEndError(Exception):
    """Stops the parser after a HEAD response's head: no body follows,
    whatever its Content-Length says, and httptools cannot be told so."""


class UpstreamConnection(WritePause):
    """One connection; one exchange at a time. Built by `UpstreamPool`."""

    __slots__ = (
        "_body",
        "_body_iterator",
        "_chunked",
        "_closed",
        "_content_length",
        "_deadline",
        "_deadline_active",
        "_head_waiter",
        "_header_bytes",
        "_header_names",
        "_headers",
        "_in_exchange",
        "_informational",
        "_is_head",
        "_loop",
        "_message_done",
        "_owner",
        "_parser",
        "_pump",
        "_pump_state",
        "_reading_paused",
        "_reason",
        "_received_any",
        "_request_sent",
        "_response",
        "_sent_chunks",
        "_sent_size",
        "_timeout",
        "_timer",
        "_timer_at",
        "_transport",
        "body_bytes_sent",
        "exchanges",
        "idle_since",
    )

    def __init__(self, owner: ConnectionOwner, loop: asyncio.AbstractEventLoop) -> None:
        self._owner = owner
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self.exchanges = 0
        self.idle_since = 0.0
        self._in_exchange = False
        # the exchange
        self._head_waiter: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._body: BodyStream | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_names: list[bytes] = []
        self._header_bytes = 0
        self._content_length: int | None = None
        self._chunked = False
        self._is_head = False
        self._informational = False
        self._received_any = False
        self._message_done = False
        self._request_sent = False
        self._body_iterator: AsyncIterator[bytes] | None = None
        self._sent_chunks: list[bytes] | None = None
        self._sent_size = 0
        self._pump: asyncio.Task[None] | None = None
        self._pump_state = _PUMP_NONE
        self.body_bytes_sent = 0
        # flow control
        self._reading_paused = False
        WritePause.__init__(self)
        # the inactivity deadline
        self._timeout: float | None = None
        self._deadline = 0.0
        self._deadline_active = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    @property
    def is_usable(self) -> bool:
        """Open, idle, and not closed by the peer (as far as the loop has seen)."""
        transport = self._transport
        return not self._closed and transport is not None and not transport.is_closing()

    # --- one exchange ---------------------------------------------------------------

    async def exchange(
        self,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        content_length: int | None,
        *,
        is_head: bool,
        response_timeout: float | None,
    ) -> UpstreamResponse:
        """Send one request, return the response once its head has arrived."""
        transport = self._transport
        if transport is None or self._closed:
            self._owner.exchange_ended(self, False)
            raise StaleConnectionError("the connection closed while idle", replayable=True)
        self.exchanges += 1
        self._in_exchange = True
        self._reset_exchange(is_head, response_timeout)
        waiter: asyncio.Future[UpstreamResponse] = self._loop.create_future()
        self._head_waiter = waiter
        if body is None:
            transport.write(head)
            self._request_sent = True
        elif isinstance(body, bytes | bytearray | memoryview):
            if len(body) <= _COPY_LIMIT:
                transport.write(head + bytes(body))
            else:
                transport.writelines([head, bytes(body)])
            self._request_sent = True
        else:
            transport.write(head)
            iterator = aiter(body)
            self._body_iterator = iterator
            # a cancelled __anext__ ruins an async generator, so only iterators
            # of other kinds (a RequestBody) may be replayed after a stale connection
            if not inspect.isasyncgen(iterator):
                self._sent_chunks = []
            self._pump = self._loop.create_task(self._pump_body(iterator, content_length))
        self._refresh_deadline()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                waiter.result().abort()
            else:
                self.abort_exchange()
            raise

    def _reset_exchange(self, is_head: bool, response_timeout: float | None) -> None:
        self._response = None
        self._body = None
        self._reason = b""
        self._headers = []
        self._header_names = []
        self._header_bytes = 0
        self._content_length = None
        self._chunked = False
        self._is_head = is_head
        self._informational = False
        self._received_any = False
        self._message_done = False
        self._request_sent = False
        self._body_iterator = None
        self._sent_chunks = None
        self._sent_size = 0
        self._pump = None
        self._pump_state = _PUMP_NONE
        self.body_bytes_sent = 0
        self._timeout = response_timeout

    async def _pump_body(self, iterator: AsyncIterator[bytes], content_length: int | None) -> None:
        chunked = content_length is None
        sent = 0
        try:
            while True:
                self._pump_state = _PUMP_WAITING_CLIENT
                self._refresh_deadline()
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                self._pump_state = _PUMP_SENDING
                kept = self._sent_chunks
                if kept is not None:
                    self._sent_size += len(chunk)
                    if self._sent_size <= _REPLAY_LIMIT:
                        kept.append(chunk)
                    else:
                        self._sent_chunks = None
                transport = self._transport
                if transport is None or transport.is_closing():
                    return  # the upstream went away; connection_lost tells the waiters
                size = len(chunk)
                if not size:
                    continue
                sent += size
                self.body_bytes_sent = sent
                if content_length is not None and sent > content_length:
                    raise ValueError("request body longer than its content_length")
                if not chunked:
                    transport.write(chunk)
                elif size <= _COPY_LIMIT:
                    transport.write(chunk_header(size) + chunk + b"\r\n")
                else:
                    transport.writelines([chunk_header(size), chunk, b"\r\n"])
                if self._write_paused:
                    self._pump_state = _PUMP_DRAINING
                    self._refresh_deadline()
                    await self._wait_writable()
            transport = self._transport
            if transport is None or transport.is_closing():
                return
            if content_length is not None and sent != content_length:
                raise ValueError("request body shorter than its content_length")
            if chunked:
                transport.write(CHUNKED_END)
            self._pump_state = _PUMP_DONE
            self._request_sent = True
            self._refresh_deadline()
            if self._message_done:
                self._end_exchange()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # the client's body failed (or broke its length): nothing sensible
            # can follow on this connection
            self._fail(exc)

    async def _wait_writable(self) -> None:
        waiter = self._loop.create_future()
        self._writable_waiter = waiter
        await waiter

    def abort_exchange(self) -> None:
        """The caller gave up: close the connection, do not reuse it."""
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        self._close(abort=True)

    def _end_exchange(self) -> None:
        """Both directions are done: hand the connection back."""
        if not self._in_exchange:
            return
        self._in_exchange = False
        response = self._response
        if response is not None:
            response.detach()
        self._response = None
        self._body = None
        self._head_waiter = None
        self._deadline_active = False
        request_finished = self._pump_state in (_PUMP_NONE, _PUMP_DONE)
        reusable = (
            response is not None and response.keep_alive and request_finished and self.is_usable
        )
        if not reusable:
            # unsent request bytes may be queued: drop them rather than flush
            self._close(abort=not request_finished)
        self._owner.exchange_ended(self, reusable)

    def _fail(self, error: BaseException) -> None:
        """The exchange cannot go on: tell whoever waits, close the connection."""
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        elif self._body is not None:
            self._body.fail(error)
        if self._pump is not None and not self._pump.done() and self._pump is not _current_task():
            self._pump.cancel()
        self._close(abort=True)
        self._end_exchange()

    def _close(self, *, abort: bool = False) -> None:
        self._closed = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if abort:
                # nothing queued is worth flushing, and an upstream that does
                # not read would keep a closing transport open forever
                transport.abort()
            else:
                transport.close()

    def close(self) -> None:
        """Close the connection (pool shutdown, idle expiry)."""
        self._close()

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._in_exchange:
            # an idle connection has nothing to say; if it talks it is broken
            self._close()
            return
        self._received_any = True
        self._sent_chunks = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            reason = exc.__context__
            if isinstance(reason, _HeadResponseEndError):
                self._parser = httptools.HttpResponseParser(self)
                self._complete_message()
            elif isinstance(reason, UpstreamProtocolError):
                self._fail(reason)
            else:
                self._fail(UpstreamProtocolError(f"response handling failed: {reason!r}"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"invalid response from upstream: {exc}"))
        self._refresh_deadline()

    def eof_received(self) -> bool:
        self._closed = True
        if self._in_exchange:
            if (
                self._response is not None
                and not self._message_done
                and self._content_length is None
                and not self._chunked
            ):
                # a close-delimited body ends here
                if self._body is not None:
                    self._body.finish()
                self._complete_message()
            else:
                self._fail(self._lost_error())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake_writer()
        if self._in_exchange:
            if not self._message_done:
                self._fail(self._lost_error())
            self._end_exchange()
        else:
            self._owner.idle_connection_lost(self)

    def _lost_error(self) -> UpstreamClosedError:
        if self._response is not None:
            return UpstreamClosedError("the upstream closed the connection mid-response")
        if self.exchanges > 1 and not self._received_any:
            message = "the reused connection was closed by the upstream"
            iterator = self._body_iterator
            if iterator is None:
                return StaleConnectionError(message, replayable=True)
            kept = self._sent_chunks
            if kept is None:
                return StaleConnectionError(message, replayable=False)
            return StaleConnectionError(
                message, replayable=True, replay=ReplayedBody(list(kept), iterator)
            )
        return UpstreamClosedError("the upstream closed the connection before responding")

    # --- ReadFlow, for the response body -------------------------------------------------

    def pause_body_reading(self) -> None:
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
            self._refresh_deadline()

    def resume_body_reading(self) -> None:
        if self._transport is not None and self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
            self._refresh_deadline()

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._in_exchange:
            raise UpstreamProtocolError("the upstream sent a response nobody asked for")

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is not None:
            return  # trailers
        self._header_bytes += len(name) + len(value) + 4
        if (
            self._header_bytes > _MAX_RESPONSE_HEADER_BYTES
            or len(self._headers) >= _MAX_RESPONSE_HEADER_COUNT
        ):
            raise UpstreamProtocolError("the upstream's response headers are too large")
        lower = name.lower()
        self._headers.append((name, value))
        self._header_names.append(lower)
        if lower == b"content-length":
            self._content_length = int(value)
        elif lower == b"transfer-encoding":
            self._chunked = value.strip().lower().endswith(b"chunked")

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            if status == 101:
                raise UpstreamProtocolError("the upstream switched protocols unasked")
            # 1xx interim answers are not forwarded: start over for the final one
            self._informational = True
            self._reason = b""
            self._headers = []
            self._header_names = []
            self._header_bytes = 0
            self._content_length = None
            self._chunked = False
            return
        body = BodyStream(self)
        self._body = body
        response = UpstreamResponse(
            status=status,
            reason=self._reason,
            headers=self._headers,
            header_names=self._header_names,
            http_version=parser.get_http_version(),
            keep_alive=parser.should_keep_alive(),
            content_length=self._content_length,
            is_chunked=self._chunked,
            body=body,
            control=self,
        )
        self._response = response
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if self._is_head:
            body.finish()
            raise _HeadResponseEndError

    def on_body(self, chunk: bytes) -> None:
        body = self._body
        if body is not None:
            body.feed(chunk)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        body = self._body
        if body is not None:
            body.finish()
        self._complete_message()

    def _complete_message(self) -> None:
        self._message_done = True
        response = self._response
        if response is not None and not self._parser.should_keep_alive() and not self._is_head:
            response.keep_alive = False
        pump = self._pump
        if pump is not None and self._pump_state != _PUMP_DONE:
            # answered before the request was fully sent: stop sending; the
            # connection cannot carry another exchange
            if not pump.done():
                pump.cancel()
            if response is not None:
                response.keep_alive = False
        self._end_exchange()

    # --- the deadline ---------------------------------------------------------------------------

    def _refresh_deadline(self) -> None:
        timeout = self._timeout
        if timeout is None or not self._in_exchange:
            self._deadline_active = False
            return
        state = self._pump_state
        if state == _PUMP_WAITING_CLIENT:
            active = False
        elif state == _PUMP_DRAINING:
            active = True
        elif self._response is None:
            active = self._request_sent
        else:
            active = not self._message_done and not self._reading_paused
        if not active:
            self._deadline_active = False
            return
        deadline = self._loop.time() + timeout
        self._deadline = deadline
        self._deadline_active = True
        timer = self._timer
        if timer is None or deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_deadline)
            self._timer_at = deadline

    def _on_deadline(self) -> None:
        self._timer = None
        if not self._deadline_active or not self._in_exchange:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)
            self._timer_at = self._deadline
            return
        self._deadline_active = False
        waited = "the response head" if self._response is None else "the response body"
        if self._pump_state == _PUMP_DRAINING:
            waited = "the upstream to read the request body"
        self._fail(UpstreamTimeoutError(f"timed out after {self._timeout}s waiting for {waited}"))


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
