"""`ServerLimits`: the bounds the HTTP server enforces on every connection.
Defaults follow nginx where it has an equivalent."""

from __future__ import annotations

import msgspec


class ServerLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sizes are bytes, durations seconds.

    - `max_header_bytes` / `max_header_count`: the header block (431 beyond).
    - `max_url_bytes`: the request target (414 beyond).
    - `max_body_bytes`: declared or streamed body (413 beyond); None = unlimited.
    - `header_timeout`: from the first byte of a request head (from accept, for
      a new connection) to its end; 408 and close (slowloris).
    - `body_timeout`: longest pause between two reads of a request body; 408.
    - `idle_timeout`: keep-alive connection with no request; closed silently.
    - `send_timeout`: longest wait for a client to take response bytes.
    - `linger_timeout`: after an error answer, how long unread client bytes
      are read and dropped before closing, so the client sees the answer and
      not a reset.
    - `keep_alive_requests`: requests per connection before `Connection: close`.

    >>> ServerLimits(header_timeout=0.3).max_url_bytes
    8192
    """

    max_header_bytes: int = 16384
    max_header_count: int = 100
    max_url_bytes: int = 8192
    max_body_bytes: int | None = 10 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0
    send_timeout: float = 60.0
    linger_timeout: float = 2.0
    keep_alive_requests: int = 10000
