"""`AccessRecord`: what the server reports for each finished request, to the
optional `access` callback (the server itself never logs per request)."""

from __future__ import annotations

import msgspec


class AccessRecord(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One finished request. `status` is 0 when no response head was sent;
    `completed` is False when the response was cut off (aborted connection)."""

    method: str
    target: str
    status: int
    bytes_received: int
    bytes_sent: int
    duration_ms: float
    client_host: str
    client_port: int
    request_id: str
    http_version: str
    completed: bool
