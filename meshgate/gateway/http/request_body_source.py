"""How a request's body is handed to the upstream client: as bytes when it
has fully arrived (one write, replayable after a stale connection), else as
the streaming body itself."""

from __future__ import annotations

from collections.abc import AsyncIterable

from meshgate.gateway.http.request import EMPTY_BODY, Request


def upstream_body(request: Request) -> tuple[bytes | AsyncIterable[bytes] | None, int | None]:
    """(body, content_length) for `UpstreamPool.request`.

    A body that arrived chunked but whole is sent with a Content-Length; one
    still arriving keeps its framing (chunked stays chunked, a declared
    length stays declared).
    """
    body = request.body
    if body is EMPTY_BODY:
        # keep an explicit "Content-Length: 0" (POST with no body), add none otherwise
        return None, request.content_length
    whole = body.take_if_received()
    if whole is not None:
        return whole, len(whole)
    return body, body.length
