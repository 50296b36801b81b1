"""Who may change a gateway through its admin API.

The rules (pure: no I/O, the caller passes the header and the peer address):

1. Reads (GET, HEAD) never need a token: they are what monitoring scrapes.
2. With a token configured, every write needs ``Authorization: Bearer
   <token>``, from any address, loopback included; a missing or wrong one is
   401 with ``WWW-Authenticate: Bearer``. Tokens are compared in constant
   time, so response timing does not leak how much of a guess was right.
3. Without a token and with `loopback_only_writes` (the default), writes are
   allowed only from the host itself (127.0.0.0/8, ::1, or IPv4-mapped
   loopback); anyone else gets 403 naming the fix (set ``admin_token``).
4. Without a token and with `loopback_only_writes` off, writes are open to
   anyone who can reach the admin port: for a port that only a trusted
   network (or a sidecar) can reach.

The peer address is the socket's, never a forwarded header: the admin port is
not behind the gateway's own proxy, and a header is whatever a client says.
"""

from __future__ import annotations

import hmac
import ipaddress

import msgspec

READ_METHODS = frozenset({"GET", "HEAD"})

_BEARER = "bearer"


class AccessRefusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why a write was refused, as the admin API answers it."""

    status: int
    error: str
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def is_loopback(host: str) -> bool:
    """Whether `host` (a peer address as the socket reports it) is this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("127.8.9.10"), is_loopback("::1")
    (True, True, True)
    >>> is_loopback("::ffff:127.0.0.1"), is_loopback("10.0.0.1"), is_loopback("")
    (True, False, False)
    """
    # A scope suffix ("fe80::1%eth0") is not part of the address.
    text = host.strip("[]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None.
    The scheme is case-insensitive (RFC 7235).

    >>> bearer_token("Bearer s3cret"), bearer_token("bearer  s3cret ")
    ('s3cret', 's3cret')
    >>> bearer_token("Basic dXNlcjpwYXNz") is None, bearer_token(None) is None
    (True, True)
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != _BEARER or not token:
        return None
    return token


def check_write_access(
    authorization: str | None,
    client_host: str,
    *,
    token: str | None,
    loopback_only_writes: bool = True,
) -> AccessRefusal | None:
    """None when a state-changing request may go ahead, else why not (see
    the module's rules 2 to 4).

    >>> check_write_access("Bearer s3cret", "10.1.2.3", token="s3cret") is None
    True
    >>> check_write_access(None, "10.1.2.3", token="s3cret").status
    401
    >>> check_write_access(None, "127.0.0.1", token=None) is None
    True
    >>> check_write_access(None, "10.1.2.3", token=None).status
    403
    """
    if token is not None:
        presented = bearer_token(authorization)
        if presented is None:
            return _unauthorized(
                None,
                "this admin request changes the gateway: send 'Authorization: Bearer <token>' "
                "with the gateway's admin_token",
            )
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return _unauthorized("invalid_token", "the bearer token is not the admin_token")
        return None
    if loopback_only_writes and not is_loopback(client_host):
        return AccessRefusal(
            status=403,
            error="forbidden",
            message=(
                f"admin writes from {client_host or 'a non-IP peer'} are refused: without "
                "admin_token only loopback clients may change the gateway; set admin_token "
                "to allow remote writes with a bearer token"
            ),
        )
    return None


def _unauthorized(error: str | None, message: str) -> AccessRefusal:
    # RFC 6750: a request without credentials gets the bare challenge; one
    # with a bad token is told `invalid_token`.
    challenge = 'Bearer realm="meshgate-admin"'
    if error is not None:
        challenge += f', error="{error}"'
    return AccessRefusal(
        status=401,
        error="unauthorized",
        message=message,
        headers=((b"WWW-Authenticate", challenge.encode()),),
    )


__all__ = [
    "READ_METHODS",
    "AccessRefusal",
    "bearer_token",
    "check_write_access",
    "is_loopback",
]
