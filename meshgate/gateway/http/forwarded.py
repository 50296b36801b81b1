"""Values of the forwarding headers a proxy adds: `X-Forwarded-For` (append
the client), and the RFC 7239 `Forwarded` element. Pure."""

from __future__ import annotations

_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def appended_forwarded_for(prior: list[bytes], client_host: str) -> bytes:
    """The `X-Forwarded-For` value with `client_host` appended to what earlier
    proxies wrote (several header lines are joined, as RFC 9110 allows).

    >>> appended_forwarded_for([b"203.0.113.7"], "10.0.0.2")
    b'203.0.113.7, 10.0.0.2'
    >>> appended_forwarded_for([], "::1")
    b'::1'
    """
    client = client_host.encode("ascii", "replace") if client_host else b"unknown"
    if not prior:
        return client
    return b", ".join([*prior, client])


def forwarded_element(client_host: str, proto: str, host: bytes | None) -> bytes:
    """One RFC 7239 `Forwarded` element for this hop; IPv6 addresses are
    bracketed and quoted, any value that is not a token is quoted.

    >>> forwarded_element("192.0.2.60", "http", b"example.com")
    b'for=192.0.2.60;proto=http;host=example.com'
    >>> forwarded_element("2001:db8::1", "https", b"example.com:8443")
    b'for="[2001:db8::1]";proto=https;host="example.com:8443"'
    """
    key = (client_host, proto, host)
    element = _elements.get(key)
    if element is not None:
        return element
    if not client_host:
        node = b"unknown"
    elif ":" in client_host:
        node = b'"[' + client_host.encode("ascii", "replace") + b']"'
    else:
        node = _token_or_quoted(client_host.encode("ascii", "replace"))
    element = b"for=" + node + b";proto=" + proto.encode("ascii")
    if host:
        element += b";host=" + _token_or_quoted(host)
    if host is None or len(host) <= _CACHED_HOST_BYTES:
        if len(_elements) >= _CACHED_ELEMENTS:
            _elements.clear()
        _elements[key] = element
    return element


_CACHED_HOST_BYTES = 256
_CACHED_ELEMENTS = 1024
_elements: dict[tuple[str, str, bytes | None], bytes] = {}
"""(client, proto, host) → its element: a client sends the same on every
request of a connection. Bounded, cleared when full."""


def _token_or_quoted(value: bytes) -> bytes:
    # deleting every token character leaves nothing exactly when it is a token
    if value and not value.translate(None, _TOKEN_CHARS):
        return value
    escaped = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + escaped + b'"'
