"""CORS, answered by the gateway: preflights never reach a service, and
simple responses get the allow headers added on the way out. Pure: headers
in, headers out.

Rules (the Fetch standard's CORS protocol):

1. A request without `Origin` is not a CORS request: nothing is added.
2. A preflight is `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
   It is answered 204 with the allowed methods and headers when the origin
   and method are allowed, and 403 without CORS headers otherwise (the
   browser then blocks the real request).
3. With `allow_credentials`, the origin is echoed, never ``*``, as browsers
   refuse ``*`` with credentials; whenever the origin is echoed, `Vary:
   Origin` tells caches that the answer depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence

_ANY = "*"


class CorsPolicy:
    """Which cross-origin callers are allowed, and what they may send and read.

    >>> policy = CorsPolicy(allow_origins=["https://app.example.com"])
    >>> policy.is_preflight("OPTIONS", "https://app.example.com", "POST")
    True
    >>> headers = dict(policy.preflight("https://app.example.com", "POST", None))
    >>> headers[b"access-control-allow-origin"]
    b'https://app.example.com'
    """

    __slots__ = (
        "_allow_headers",
        "_allow_methods",
        "_expose",
        "_max_age",
        "allow_credentials",
        "allow_origins",
    )

    def __init__(
        self,
        *,
        allow_origins: Sequence[str] = (_ANY,),
        allow_methods: Sequence[str] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"),
        allow_headers: Sequence[str] = (_ANY,),
        expose_headers: Sequence[str] = ("X-Request-Id",),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        self.allow_origins = frozenset(allow_origins)
        self._allow_methods = frozenset(m.upper() for m in allow_methods)
        self._allow_headers = tuple(h.lower() for h in allow_headers)
        self._expose = ", ".join(expose_headers).encode("latin-1")
        self.allow_credentials = allow_credentials
        self._max_age = str(max_age).encode()

    def is_preflight(self, method: str, origin: str | None, request_method: str | None) -> bool:
        return method == "OPTIONS" and origin is not None and request_method is not None

    def allows_origin(self, origin: str) -> bool:
        return _ANY in self.allow_origins or origin in self.allow_origins

    def preflight(
        self, origin: str, request_method: str, request_headers: str | None
    ) -> list[tuple[bytes, bytes]] | None:
        """The headers of a 204 answer, or None when the preflight is refused."""
        if not self.allows_origin(origin) or request_method.upper() not in self._allow_methods:
            return None
        if request_headers:
            asked = [h.strip().lower() for h in request_headers.split(",") if h.strip()]
            if _ANY not in self._allow_headers and any(h not in self._allow_headers for h in asked):
                return None
            allowed = ", ".join(asked)
        else:
            allowed = ""
        headers = self._origin_headers(origin)
        headers.append(
            (b"access-control-allow-methods", ", ".join(sorted(self._allow_methods)).encode())
        )
        if allowed:
            headers.append((b"access-control-allow-headers", allowed.encode("latin-1")))
        headers.append((b"access-control-max-age", self._max_age))
        return headers

    def response_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        """Headers to add to an actual response for `origin` (none if not allowed)."""
        if origin is None or not self.allows_origin(origin):
            return []
        headers = self._origin_headers(origin)
        if self._expose:
            headers.append((b"access-control-expose-headers", self._expose))
        return headers

    def _origin_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        if _ANY in self.allow_origins and not self.allow_credentials:
            return [(b"access-control-allow-origin", b"*")]
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        ]
        if self.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers
