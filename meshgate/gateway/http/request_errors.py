"""What can go wrong while a handler reads the request body.

Each error carries the status the server answers with when the handler lets
it escape before starting its response.
"""

from __future__ import annotations


class RequestBodyError(Exception):
    """The request body could not be read completely."""

    status = 400
    error = "bad_request"


class BodyTooLargeError(RequestBodyError):
    """The body is longer than the limit (the server's or `read_all`'s)."""

    status = 413
    error = "payload_too_large"


class BodyTimeoutError(RequestBodyError):
    """The client stopped sending its body for longer than `body_timeout`."""

    status = 408
    error = "request_timeout"


class MalformedBodyError(RequestBodyError):
    """The chunked framing of the body is broken."""

    status = 400
    error = "bad_request"


class ClientDisconnectedError(RequestBodyError):
    """The client went away; there is nobody left to answer."""

    status = 499
    error = "client_closed_request"
