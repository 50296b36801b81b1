"""`ServerConnection`: one client connection of `HttpServer`, an asyncio
Protocol that parses requests with httptools and runs the handler.

Rules of this state machine:

- One handler runs at a time. Requests pipelined behind it wait in
  `_pending`, in order, and reading stops while any wait.
- Reading also stops while a body has more than 64 KiB unread
  (`pause_body_reading`) and for good once the input is refused (`_halted`).
- Bad input is refused with an error answer, then a lingering close:
  half-close, read and drop what the client still sends, close. That way
  the client reads the answer instead of a connection reset.
- One deadline at a time, by phase (`_refresh_deadline`): the header
  timeout from the first byte of a head (from accept for the first request)
  and never extended by more bytes; the body timeout between reads of a
  body; the idle timeout between requests; none while the handler works.
  The deadline is a number; one timer per connection re-arms itself lazily,
  so a request costs no timer allocation.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import cast

import httptools
import structlog

from meshgate.gateway.http.access import AccessRecord
from meshgate.gateway.http.error_body import render_error_body
from meshgate.gateway.http.framing import CONTINUE_LINE, encode_head, status_line
from meshgate.gateway.http.headers import Headers
from meshgate.gateway.http.limits import ServerLimits
from meshgate.gateway.http.request import (
    EMPTY_BODY,
    Handler,
    Request,
    RequestBody,
    Responder,
)
from meshgate.gateway.http.request_errors import (
    BodyTimeoutError,
    BodyTooLargeError,
    ClientDisconnectedError,
    MalformedBodyError,
    RequestBodyError,
)
from meshgate.gateway.http.request_id import accepted_request_id, new_request_id
from meshgate.gateway.http.target import BadPathError, normalize_path, split_target
from meshgate.gateway.http.upstream_errors import UpstreamError, UpstreamTimeoutError
from meshgate.gateway.http.write_pause import WritePause

log = structlog.get_logger(__name__)

_NONE, _IDLE, _HEADER, _BODY, _LINGER = range(5)

# request-line and CRLF overhead allowed on top of the URL and header limits
# when bounding a head whose parse is still in progress
_HEAD_SLACK = 1024

_METHODS = {
    m.encode(): m
    for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT")
}
# lengths of the header names the parser loop looks at, to skip the rest cheaply
_WATCHED_LENGTHS = frozenset((4, 6, 12, 14, 17))


class ServerState:
    """What every connection of one `HttpServer` shares."""

    __slots__ = (
        "_closed_waiter",
        "access",
        "connections",
        "draining",
        "handler",
        "in_flight",
        "limits",
        "loop",
        "scheme",
    )

    def __init__(
        self,
        handler: Handler,
        limits: ServerLimits,
        access: Callable[[AccessRecord], None] | None,
        loop: asyncio.AbstractEventLoop,
        scheme: str,
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.access = access
        self.loop = loop
        self.scheme = scheme
        self.connections: set[ServerConnection] = set()
        self.in_flight = 0
        self.draining = False
        self._closed_waiter: asyncio.Future[None] | None = None

    def forget(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)
        waiter = self._closed_waiter
        if not self.connections and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_all_closed(self) -> None:
        if not self.connections:
            return
        if self._closed_waiter is None or self._closed_waiter.done():
            self._closed_waiter = self.loop.create_future()
        await self._closed_waiter


class _InputRefusedError(Exception):
    """Input refused: answer `status` and close. Raised inside parser callbacks."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


class _StopParsingError(Exception):
    """Stop the parser here (a body went over the limit); raised in callbacks."""


class ServerConnection(WritePause):
    """One client connection. Created by the server per accepted socket."""

    __slots__ = (
        "_body",
        "_body_paused",
        "_chunked",
        "_client_host",
        "_client_port",
        "_close_after",
        "_content_length",
        "_current",
        "_current_request",
        "_deadline",
        "_deadline_kind",
        "_discarding",
        "_eof",
        "_expect",
        "_halted",
        "_head_budget",
        "_head_started",
        "_header_bytes",
        "_headers_done",
        "_host_count",
        "_in_head",
        "_limits",
        "_lingering",
        "_loop",
        "_lower_names",
        "_max_body",
        "_must_close",
        "_parser",
        "_pending",
        "_raw_head_bytes",
        "_raw_headers",
        "_reading_paused",
        "_request_id_value",
        "_served",
        "_state",
        "_task",
        "_timer",
        "_timer_at",
        "_transport",
        "_url",
    )

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._limits = state.limits
        self._loop = state.loop
        self._max_body = state.limits.max_body_bytes
        self._head_budget = state.limits.max_url_bytes + state.limits.max_header_bytes + _HEAD_SLACK
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client_host = ""
        self._client_port = 0
        # the head being parsed
        self._in_head = True
        self._head_started = False
        self._raw_head_bytes = 0
        self._url = b""
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._lower_names: list[bytes] = []
        self._header_bytes = 0
        self._headers_done = False
        self._content_length: int | None = None
        self._chunked = False
        self._expect: bytes | None = None
        self._request_id_value: bytes | None = None
        self._host_count = 0
        # the body being received, and whether it is being dropped after its handler ended
        self._body: RequestBody | None = None
        self._discarding = False
        # the request being handled, and those queued behind it
        self._current: Responder | None = None
        self._current_request: Request | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: deque[tuple[Request, Responder] | _InputRefusedError] = deque()
        self._served = 0
        # connection fate
        self._close_after = False
        self._must_close = False
        self._eof = False
        self._halted = False
        self._lingering = False
        # flow control
        self._body_paused = False
        self._reading_paused = False
        WritePause.__init__(self)
        # the one deadline
        self._deadline = 0.0
        self._deadline_kind = _NONE
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # --- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client_host, self._client_port = str(peer[0]), int(peer[1])
        self._state.connections.add(self)
        if self._state.draining:
            transport.close()
            return
        self._arm(_HEADER, self._limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._lingering or self._halted:
            # refused input, or a tail that arrived before the pause took effect
            return
        if self._in_head:
            self._raw_head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # the request is parsed (upgrades carry no body); what follows is a
            # protocol this server does not speak
            self._must_close = True
            self._halt()
        except httptools.HttpParserCallbackError as exc:
            reason = exc.__context__
            if isinstance(reason, _InputRefusedError):
                self._reject(reason.status, reason.error, reason.message)
            elif not isinstance(reason, _StopParsingError):
                log.error("http.parser_callback_failed", error=repr(reason))
                self._reject(500, "internal_error", "the request could not be processed")
        except httptools.HttpParserError as exc:
            self._on_parse_error(exc)
        else:
            if self._in_head and self._raw_head_bytes > self._head_budget:
                self._reject_oversized_head()
        self._refresh_deadline()

    def eof_received(self) -> bool:
        # like nginx, a client that closes its sending side has given up: its
        # handler is cancelled (connection_lost) rather than left to run for
        # nobody; a half-closing HTTP client is too rare to justify the cost
        self._eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._state.forget(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gone = ClientDisconnectedError("the client connection is closed")
        if self._body is not None:
            self._body.fail(gone)
            self._body = None
        for entry in self._pending:
            if not isinstance(entry, _InputRefusedError):
                entry[0].body.fail(gone)
        self._pending.clear()
        self._wake_writer()
        responder = self._current
        if self._task is not None and responder is not None and not responder.ended:
            self._task.cancel()

    # --- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_started = True
        self._url = b""
        self._raw_headers = []
        self._lower_names = []
        self._header_bytes = 0
        self._headers_done = False
        self._content_length = None
        self._chunked = False
        self._expect = None
        self._request_id_value = None
        self._host_count = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_url_bytes:
            raise _InputRefusedError(414, "uri_too_long", "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self._limits
        self._header_bytes += len(name) + len(value) + 4
        if self._headers_done:
            # trailers of a chunked body: bounded like headers, then dropped
            if self._header_bytes > limits.max_header_bytes:
                raise _InputRefusedError(431, "headers_too_large", "the trailers are too large")
            return
        raw_headers = self._raw_headers
        if len(raw_headers) >= limits.max_header_count:
            raise _InputRefusedError(431, "headers_too_large", "too many header fields")
        if self._header_bytes > limits.max_header_bytes:
            raise _InputRefusedError(431, "headers_too_large", "the header block is too large")
        lower = name.lower()
        raw_headers.append((name, value))
        self._lower_names.append(lower)
        if len(lower) in _WATCHED_LENGTHS:
            if lower == b"host":
                self._host_count += 1
            elif lower == b"content-length":
                # the parser already refuses duplicates and non-digits
                self._content_length = int(value)
            elif lower == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    raise _InputRefusedError(
                        400, "bad_request", "only the chunked transfer coding is accepted"
                    )
                self._chunked = True
            elif lower == b"expect":
                self._expect = value
            elif lower == b"x-request-id":
                self._request_id_value = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._headers_done = True
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _InputRefusedError(
                505, "http_version_not_supported", f"HTTP/{version} is not supported"
            )
        if self._host_count != 1 and (version == "1.1" or self._host_count > 1):
            raise _InputRefusedError(400, "bad_request", "a request needs exactly one Host header")
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        raw_target = self._url
        path, query = split_target(raw_target)
        if path != "*" or method != "OPTIONS":
            try:
                path = normalize_path(path)
            except BadPathError as exc:
                raise _InputRefusedError(400, "bad_request", f"bad request path: {exc}") from None
        expect_continue = False
        if self._expect is not None:
            if self._expect.strip().lower() != b"100-continue":
                raise _InputRefusedError(
                    417, "expectation_failed", "only 100-continue is supported"
                )
            expect_continue = version == "1.1"
        length = self._content_length
        chunked = self._chunked
        if length is not None and chunked:
            raise _InputRefusedError(
                400, "bad_request", "Content-Length together with Transfer-Encoding"
            )
        max_body = self._max_body
        if length is not None and max_body is not None and length > max_body:
            raise _InputRefusedError(
                413, "payload_too_large", f"the body exceeds the limit of {max_body} bytes"
            )
        body: RequestBody
        if chunked or (length is not None and length > 0):
            body = RequestBody(
                self, length=length, chunked=chunked, expect_continue=expect_continue
            )
            self._body = body
        else:
            body = EMPTY_BODY
        request_id = None
        if self._request_id_value is not None:
            request_id = accepted_request_id(self._request_id_value)
        request = Request(
            method=method,
            raw_target=raw_target,
            path=path,
            query=query,
            headers=Headers(self._raw_headers, self._lower_names),
            http_version=version,
            client_host=self._client_host,
            client_port=self._client_port,
            scheme=self._state.scheme,
            keep_alive=parser.should_keep_alive(),
            body=body,
            content_length=length,
            request_id=request_id or new_request_id(),
            received_at=time.monotonic(),
        )
        responder = Responder(self, request)
        if self._current is None and not self._pending:
            self._start(request, responder)
        else:
            self._pending.append((request, responder))
            self._update_reading()

    def on_body(self, chunk: bytes) -> None:
        body = self._body
        if body is None:
            return
        received = body.received + len(chunk)
        body.received = received
        max_body = self._max_body
        if max_body is not None and received > max_body:
            body.fail(BodyTooLargeError(f"the body exceeds the limit of {max_body} bytes"))
            self._body = None
            self._must_close = True
            self._halt()
            if self._discarding:
                self._discarding = False
                self._close_now()
            raise _StopParsingError
        if not self._discarding:
            body.feed(chunk)

    def on_message_complete(self) -> None:
        body = self._body
        if body is not None:
            body.finish()
            self._body = None
        self._in_head = True
        self._head_started = False
        self._raw_head_bytes = 0
        self._headers_done = False
        if self._discarding:
            self._discarding = False
            self._next_cycle()

    # --- ReadFlow / ResponseChannel ---------------------------------------------

    def pause_body_reading(self) -> None:
        self._body_paused = True
        self._update_reading()
        self._refresh_deadline()

    def resume_body_reading(self) -> None:
        self._body_paused = False
        self._update_reading()
        self._refresh_deadline()

    @property
    def is_write_paused(self) -> bool:
        return self._write_paused

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ClientDisconnectedError("the client connection is closed")
        transport.write(data)

    def write_pieces(self, pieces: list[bytes]) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ClientDisconnectedError("the client connection is closed")
        transport.writelines(pieces)

    async def drain(self) -> None:
        if not self._write_paused:
            return
        if self._transport is None:
            raise ClientDisconnectedError("the client connection is closed")
        waiter = self._loop.create_future()
        self._writable_waiter = waiter
        timer = self._loop.call_later(self._limits.send_timeout, self._on_send_timeout, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
        if self._transport is None:
            raise ClientDisconnectedError("the client connection is closed")

    def keep_alive_after(self, request: Request) -> bool:
        return (
            request.keep_alive
            and not request.body.is_waiting_for_continue
            and not self._must_close
            and not self._close_after
            and not self._eof
            and not self._state.draining
            and self._served + 1 < self._limits.keep_alive_requests
        )

    def close_after_response(self) -> None:
        self._close_after = True

    def send_continue(self, body: RequestBody) -> None:
        responder = self._current
        request = self._current_request
        transport = self._transport
        if (
            responder is not None
            and request is not None
            and request.body is body
            and not responder.started
            and transport is not None
            and not transport.is_closing()
        ):
            transport.write(CONTINUE_LINE)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # --- server side --------------------------------------------------------------

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def begin_drain(self) -> None:
        """Close now if idle; otherwise the response in flight says `Connection: close`."""
        if (
            self._current is None
            and not self._pending
            and not self._head_started
            and self._body is None
            and not self._lingering
        ):
            self._close_now()

    # --- the request cycle ----------------------------------------------------------

    def _start(self, request: Request, responder: Responder) -> None:
        self._current = responder
        self._current_request = request
        self._state.in_flight += 1
        self._task = self._loop.create_task(self._run(request, responder))

    async def _run(self, request: Request, responder: Responder) -> None:
        try:
            await self._state.handler(request, responder)
            if not responder.started:
                await responder.send_error(
                    500, "internal_error", "the handler returned without answering"
                )
            elif not responder.ended:
                # a half-sent response cannot be completed honestly
                log.error("http.handler_left_response_open", request_id=request.request_id)
                responder.abort()
        except asyncio.CancelledError:
            pass  # the client is gone; there is nobody to answer
        except Exception as exc:
            await self._answer_failure(request, responder, exc)
        finally:
            self._state.in_flight -= 1
            self._end_cycle(request, responder)

    async def _answer_failure(self, request: Request, responder: Responder, exc: Exception) -> None:
        if isinstance(exc, ClientDisconnectedError):
            responder.abort()
            return
        if responder.started:
            log.warning("http.response_aborted", request_id=request.request_id, error=repr(exc))
            responder.abort()
            return
        if isinstance(exc, RequestBodyError):
            status, error, message = exc.status, exc.error, str(exc)
            self._must_close = True
        elif isinstance(exc, UpstreamTimeoutError):
            status, error, message = 504, "gateway_timeout", "the upstream did not answer in time"
        elif isinstance(exc, UpstreamError):
            status, error, message = 502, "bad_gateway", "the upstream failed"
        else:
            log.exception("http.handler_failed", request_id=request.request_id, path=request.path)
            status, error, message = 500, "internal_error", "the request could not be processed"
        try:
            await responder.send_error(status, error, message)
        except Exception:
            responder.abort()

    def _end_cycle(self, request: Request, responder: Responder) -> None:
        self._current = None
        self._current_request = None
        self._task = None
        if self._state.access is not None:
            self._report(request, responder)
        if self._transport is None or not responder.ended:
            return
        self._served += 1
        if self._close_after or self._must_close:
            self._finish_connection()
            return
        body = request.body
        if not body.is_done:
            if body.is_waiting_for_continue:
                # the client waits for our go-ahead and will not send: do not wait for it
                self._finish_connection()
                return
            body.drop_buffered()
            self._discarding = True
            self._update_reading()
            self._refresh_deadline()
            return
        self._next_cycle()

    def _next_cycle(self) -> None:
        if self._transport is None:
            return
        if self._pending:
            entry = self._pending.popleft()
            if isinstance(entry, _InputRefusedError):
                self._send_rejection(entry.status, entry.error, entry.message)
                return
            self._start(*entry)
            self._update_reading()
            return
        if self._state.draining or self._eof:
            self._finish_connection()
            return
        self._update_reading()
        self._refresh_deadline()

    def _finish_connection(self) -> None:
        if self._transport is None:
            return
        if self._body is None and not self._head_started and not self._halted:
            self._close_now()
        else:
            self._linger()

    def _close_now(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # --- refusing input ----------------------------------------------------------------

    def _on_parse_error(self, exc: httptools.HttpParserError) -> None:
        body = self._body
        if body is not None:
            # broken chunked framing: whoever reads the body answers 400
            body.fail(MalformedBodyError(f"malformed request body: {exc}"))
            self._body = None
            self._must_close = True
            self._halt()
            if self._discarding:
                self._discarding = False
                self._close_now()
            return
        if "HTTP version" in str(exc):
            self._reject(505, "http_version_not_supported", "this HTTP version is not supported")
        else:
            self._reject(400, "bad_request", f"malformed request: {exc}")

    def _reject_oversized_head(self) -> None:
        if self._headers_done or self._raw_headers:
            self._reject(431, "headers_too_large", "the header block is too large")
        else:
            self._reject(414, "uri_too_long", "the request target is too long")

    def _reject(self, status: int, error: str, message: str) -> None:
        self._halt()
        if self._current is not None or self._pending:
            # answers go out in request order: after those already queued
            self._pending.append(_InputRefusedError(status, error, message))
            return
        self._send_rejection(status, error, message)

    def _send_rejection(self, status: int, error: str, message: str) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        request_id = new_request_id()
        body = render_error_body(status, error, message, request_id)
        headers = [
            (b"Content-Type", b"application/json"),
            (b"X-Request-Id", request_id.encode("ascii")),
            (b"Content-Length", b"%d" % len(body)),
        ]
        transport.write(encode_head(status_line(status), headers, b"Connection: close\r\n") + body)
        if self._state.access is not None:
            self._report_rejection(status, request_id, len(body))
        self._linger()

    def _halt(self) -> None:
        self._halted = True
        self._update_reading()

    def _linger(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        self._halted = True
        transport.write_eof()
        self._update_reading()
        self._arm(_LINGER, self._limits.linger_timeout)

    # --- flow and deadlines ----------------------------------------------------------------

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None:
            return
        paused = (self._body_paused or bool(self._pending) or self._halted) and not self._lingering
        if paused != self._reading_paused:
            self._reading_paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _refresh_deadline(self) -> None:
        if self._lingering or self._transport is None:
            return
        if self._body is not None and not self._reading_paused:
            self._arm(_BODY, self._limits.body_timeout)
        elif self._current is not None or self._pending:
            self._deadline_kind = _NONE
        elif self._head_started:
            if self._deadline_kind != _HEADER:
                self._arm(_HEADER, self._limits.header_timeout)
        elif self._deadline_kind != _IDLE and self._deadline_kind != _HEADER:
            self._arm(_IDLE, self._limits.idle_timeout)

    def _arm(self, kind: int, seconds: float) -> None:
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        self._deadline_kind = kind
        timer = self._timer
        if timer is None or deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_deadline)
            self._timer_at = deadline

    def _on_deadline(self) -> None:
        self._timer = None
        kind = self._deadline_kind
        if kind == _NONE or self._transport is None:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)
            self._timer_at = self._deadline
            return
        self._deadline_kind = _NONE
        if kind == _HEADER and self._head_started:
            self._reject(408, "request_timeout", "the request head did not arrive in time")
        elif kind == _BODY and self._body is not None:
            body = self._body
            self._body = None
            body.fail(BodyTimeoutError("the request body stalled"))
            self._must_close = True
            self._halt()
            if self._discarding:
                self._discarding = False
                self._close_now()
        else:
            # idle keep-alive, silent first connection, or lingering over
            self._close_now()

    def _on_send_timeout(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            log.info("http.send_timed_out", client_host=self._client_host)
            self.abort()

    # --- access records ------------------------------------------------------------------------

    def _report(self, request: Request, responder: Responder) -> None:
        access = self._state.access
        assert access is not None
        record = AccessRecord(
            method=request.method,
            target=request.raw_target.decode("latin-1"),
            status=responder.status or 0,
            bytes_received=request.body.received,
            bytes_sent=responder.bytes_sent,
            duration_ms=(time.monotonic() - request.received_at) * 1000.0,
            client_host=request.client_host,
            client_port=request.client_port,
            request_id=request.request_id,
            http_version=request.http_version,
            completed=responder.ended,
        )
        try:
            access(record)
        except Exception:
            log.exception("http.access_callback_failed")

    def _report_rejection(self, status: int, request_id: str, size: int) -> None:
        access = self._state.access
        assert access is not None
        try:
            method = self._parser.get_method().decode("latin-1")
        except httptools.HttpParserError:
            method = ""
        record = AccessRecord(
            method=method,
            target=self._url.decode("latin-1"),
            status=status,
            bytes_received=0,
            bytes_sent=size,
            duration_ms=0.0,
            client_host=self._client_host,
            client_port=self._client_port,
            request_id=request_id,
            http_version="",
            completed=True,
        )
        try:
            access(record)
        except Exception:
            log.exception("http.access_callback_failed")
