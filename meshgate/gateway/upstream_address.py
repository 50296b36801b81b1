"""Fixed upstream addresses as config files write them: ``"host:port"``,
``"[::1]:port"`` for IPv6."""

from __future__ import annotations

import re
from collections.abc import Iterable

_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\]")


def parse_upstream_address(address: str, *, option: str = "upstreams") -> tuple[str, int]:
    """The host (without IPv6 brackets) and port of `address`.

    >>> parse_upstream_address("127.0.0.1:9001"), parse_upstream_address("[::1]:80")
    (('127.0.0.1', 9001), ('::1', 80))
    >>> parse_upstream_address("http://users:80")
    Traceback (most recent call last):
    ...
    ValueError: upstreams has 'http://users:80': expected 'host:port' without a scheme
    """
    return parse_host_port(address, option=option, lowest_port=1)


def parse_host_port(address: str, *, option: str, lowest_port: int) -> tuple[str, int]:
    """`address` as host and port, the port at least `lowest_port` (0 for an
    address to listen on, where it lets the system choose)."""
    if not isinstance(address, str):
        raise ValueError(f"{option} has {address!r}: expected a 'host:port' string")
    if "://" in address:
        raise ValueError(f"{option} has {address!r}: expected 'host:port' without a scheme")
    host, sep, port_text = address.rpartition(":")
    if not sep or not _HOST.fullmatch(host) or not port_text.isdigit():
        raise ValueError(f"{option} has {address!r}: expected 'host:port', such as '10.0.0.5:8080'")
    port = int(port_text)
    if not lowest_port <= port < 65536:
        raise ValueError(f"{option} has {address!r}: the port must be {lowest_port}..65535")
    return host.removeprefix("[").removesuffix("]"), port


def check_upstreams(addresses: Iterable[str], *, option: str = "upstreams") -> None:
    """Raise `ValueError` naming the first address that is not ``host:port``,
    or one listed twice."""
    seen: set[str] = set()
    for address in addresses:
        parse_upstream_address(address, option=option)
        if address in seen:
            raise ValueError(f"{option} lists {address!r} twice")
        seen.add(address)
