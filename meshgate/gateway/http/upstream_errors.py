"""Errors of the upstream client, shaped for the gateway's retry decisions.

`request_sent` tells whether any byte of the request may have reached the
upstream: when it is False a retry on another instance is always safe; when
it is True only idempotent requests may be retried.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """The upstream exchange failed."""

    request_sent = True

    def __init__(self, message: str, *, request_sent: bool | None = None) -> None:
        super().__init__(message)
        if request_sent is not None:
            self.request_sent = request_sent


class UpstreamConnectError(UpstreamError):
    """No connection could be made; nothing was sent."""

    request_sent = False


class UpstreamConnectTimeoutError(UpstreamConnectError):
    """The connection was not established within `connect_timeout`."""


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer (or did not accept the request body) in time."""


class UpstreamProtocolError(UpstreamError):
    """The upstream's response is not valid HTTP/1.1."""


class UpstreamClosedError(UpstreamError):
    """The upstream closed the connection before the response was complete."""


class UpstreamResponseTooLargeError(UpstreamError):
    """`read_all(limit)` met a response body longer than `limit`."""
