"""`forward`: relay one request to an upstream and its response back, as a
reverse proxy should (RFC 9110 §7.6, nginx's behaviour where RFCs leave room).

    async def handler(request: Request, responder: Responder) -> None:
        pool = pools.get("10.0.0.5", 8080)
        try:
            result = await forward(request, responder, pool,
                                   target=request.raw_target, response_timeout=10.0)
        except UpstreamTimeoutError:
            await responder.send_error(504, "gateway_timeout", "upstream too slow")
        except UpstreamError:
            await responder.send_error(502, "bad_gateway", "upstream failed")

Bodies stream both ways with backpressure and are never held whole, except
a request body that had fully arrived already (sent in one write, and
replayable on a stale connection) and a response body that had (answered in
one write).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import msgspec

from meshgate.gateway.http.forwarded import appended_forwarded_for, forwarded_element
from meshgate.gateway.http.hop_by_hop import end_to_end_headers, removal_set
from meshgate.gateway.http.request import Request, Responder
from meshgate.gateway.http.request_body_source import upstream_body
from meshgate.gateway.http.upstream import UpstreamPool
from meshgate.gateway.http.upstream_errors import UpstreamError
from meshgate.gateway.http.upstream_response import UpstreamResponse

# Content-Length is re-derived from the body actually sent; Expect is answered
# here (100-continue is ours to send); the forwarding headers are rewritten
_REQUEST_DROP = removal_set(
    b"content-length",
    b"expect",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
)
_REQUEST_DROP_KEEP_FORWARDING = removal_set(b"content-length", b"expect", b"x-request-id")
_RESPONSE_DROP = removal_set(b"content-length", b"x-request-id")
_NO_BODY_STATUSES = frozenset((204, 304))


class ForwardResult(msgspec.Struct, frozen=True, kw_only=True):
    """How one forwarded request went.

    `upstream_latency_ms`: from sending to the response head. `bytes_in`:
    request body bytes received from the client; `bytes_out`: response body
    bytes sent to it. `error` is set when the upstream failed after the
    response had started (the client connection was then cut); `request_sent`
    says whether the upstream got the request.
    """

    status: int
    upstream_latency_ms: float
    bytes_in: int
    bytes_out: int
    error: UpstreamError | None = None
    request_sent: bool = True


class UpstreamAddress(Protocol):
    """Where a request goes: an `UpstreamPool`, or anything with its address."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


def upstream_request_headers(
    request: Request,
    pool: UpstreamAddress,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    add_forwarded: bool = True,
) -> list[tuple[bytes, bytes]]:
    """The headers to send upstream for `request`.

    Hop-by-hop headers go (with those its `Connection` names, and `Expect`);
    `Host` is the client's (the pool's address if it sent none);
    `X-Forwarded-For` gets the client appended; `X-Forwarded-Proto`,
    `X-Forwarded-Host` and an RFC 7239 `Forwarded` element are set (unless
    `add_forwarded` is False: then the client's pass unchanged);
    `X-Request-Id` is the request's id. `extra_headers` replace headers of
    the same name. `traceparent`/`tracestate` pass unchanged.
    """
    headers = request.headers
    raw = headers.raw
    lower = headers.lower_names
    out = end_to_end_headers(
        raw, lower, _REQUEST_DROP if add_forwarded else _REQUEST_DROP_KEEP_FORWARDING
    )
    host = headers.get_bytes(b"host")
    if host is None:
        out.append((b"Host", f"{pool.host}:{pool.port}".encode("idna")))
    if add_forwarded:
        prior = headers.get_all_bytes(b"x-forwarded-for") if b"x-forwarded-for" in lower else []
        out.append((b"X-Forwarded-For", appended_forwarded_for(prior, request.client_host)))
        out.append((b"X-Forwarded-Proto", request.scheme.encode("ascii")))
        if host is not None:
            out.append((b"X-Forwarded-Host", host))
        out.append((b"Forwarded", forwarded_element(request.client_host, request.scheme, host)))
    out.append((b"X-Request-Id", request.request_id.encode("latin-1")))
    if extra_headers:
        replaced = {name.lower() for name, _ in extra_headers}
        out = [pair for pair in out if pair[0].lower() not in replaced]
        out.extend(extra_headers)
    return out


def downstream_response_headers(
    upstream_headers: list[tuple[bytes, bytes]], header_names: list[bytes], request_id: str
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers as the client gets them: hop-by-hop
    and framing headers removed (the responder writes its own), `X-Request-Id`
    set to the request's id."""
    out = end_to_end_headers(upstream_headers, header_names, _RESPONSE_DROP)
    out.append((b"X-Request-Id", request_id.encode("latin-1")))
    return out


async def forward(
    request: Request,
    responder: Responder,
    pool: UpstreamPool,
    *,
    target: bytes,
    response_timeout: float | None,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    add_forwarded: bool = True,
) -> ForwardResult:
    """Send `request` to `pool` as `target` and relay the answer to `responder`.

    Before the response has started, upstream failures raise their
    `UpstreamError` (the caller picks retry, 502 or 504; `error.request_sent`
    says whether a retry is safe for a non-idempotent method). After it has
    started, the client connection is cut and the error returned in the
    result. Errors of the client's own body (`RequestBodyError`) propagate.
    """
    headers = upstream_request_headers(request, pool, extra_headers, add_forwarded=add_forwarded)
    body, content_length = upstream_body(request)
    started_at = time.monotonic()
    response = await pool.request(
        request.method,
        target,
        headers,
        body,
        content_length=content_length,
        response_timeout=response_timeout,
    )
    latency_ms = (time.monotonic() - started_at) * 1000.0
    return await relay_response(request, responder, response, latency_ms)


async def relay_response(
    request: Request,
    responder: Responder,
    response: UpstreamResponse,
    upstream_latency_ms: float,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> ForwardResult:
    """Relay `response` (whose head has arrived) to `responder`, streaming
    its body; `extra_headers` are added to the client's response (CORS, say).

    The gateway's retry loop calls this once it has decided to keep an
    upstream answer; `forward` calls it at once. An upstream failure while
    the body streams cuts the client connection and is returned in the result.
    """
    status = response.status
    out_headers = downstream_response_headers(
        response.headers, response.header_names, request.request_id
    )
    if extra_headers:
        out_headers.extend(extra_headers)
    try:
        if request.method == "HEAD" or status in _NO_BODY_STATUSES:
            await responder.start(status, out_headers, content_length=response.content_length)
            await responder.end()
        else:
            whole = response.take_body_if_received()
            if whole is not None:
                await responder.send(status, whole, out_headers)
            else:
                await responder.start(status, out_headers, content_length=response.content_length)
                async for chunk in response:
                    await responder.write(chunk)
                await responder.end()
    except UpstreamError as exc:
        response.abort()
        responder.abort()
        return ForwardResult(
            status=status,
            upstream_latency_ms=upstream_latency_ms,
            bytes_in=request.body.received,
            bytes_out=responder.bytes_sent,
            error=exc,
        )
    except BaseException:
        response.abort()
        raise
    return ForwardResult(
        status=status,
        upstream_latency_ms=upstream_latency_ms,
        bytes_in=request.body.received,
        bytes_out=responder.bytes_sent,
    )
