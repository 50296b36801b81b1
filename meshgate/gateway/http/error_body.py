"""The JSON body of every error the gateway answers itself."""

from __future__ import annotations

import msgspec


class ErrorBody(msgspec.Struct, frozen=True, gc=False):
    """`{"error": ..., "message": ..., "status": ..., "request_id": ...}`."""

    error: str
    message: str
    status: int
    request_id: str


_encode = msgspec.json.Encoder().encode


def render_error_body(status: int, error: str, message: str, request_id: str) -> bytes:
    """The JSON error body as bytes.

    >>> render_error_body(404, "not_found", "no route", "r1")
    b'{"error":"not_found","message":"no route","status":404,"request_id":"r1"}'
    """
    return _encode(ErrorBody(error=error, message=message, status=status, request_id=request_id))
