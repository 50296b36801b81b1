"""Hop-by-hop headers: those that describe one connection and must not be
forwarded (RFC 9110 §7.6.1), plus any header the sender names in its
`Connection` header. Pure.
"""

from __future__ import annotations

HOP_BY_HOP_HEADERS: frozenset[bytes] = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    )
)


def connection_named_headers(connection_values: list[bytes]) -> frozenset[bytes]:
    """Lower-cased header names listed in `Connection` header values.

    >>> sorted(connection_named_headers([b"keep-alive, X-Secret", b" close "]))
    [b'close', b'keep-alive', b'x-secret']
    """
    names: set[bytes] = set()
    for value in connection_values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token:
                names.add(token)
    return frozenset(names)


def removal_set(*names: bytes) -> frozenset[bytes]:
    """The hop-by-hop headers plus `names` (lower-case). Build it once, at
    import, and pass it to `end_to_end_headers` on every message.

    >>> b"upgrade" in removal_set(b"content-length")
    True
    """
    return HOP_BY_HOP_HEADERS | frozenset(names)


def end_to_end_headers(
    raw: list[tuple[bytes, bytes]], lower_names: list[bytes], drop: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """`raw` without the names in `drop` (a `removal_set`, so hop-by-hop
    headers included) and without the headers the message's own `Connection`
    header names.

    >>> raw = [(b"Connection", b"x-a"), (b"X-A", b"1"), (b"Keep-Alive", b"5"), (b"Y", b"2")]
    >>> end_to_end_headers(raw, [n.lower() for n, _ in raw], removal_set())
    [(b'Y', b'2')]
    """
    if b"connection" in lower_names:
        value = raw[lower_names.index(b"connection")][1]
        if len(value) <= _CACHED_VALUE_BYTES and lower_names.count(b"connection") == 1:
            # Nearly every message says `Connection: keep-alive` (or close):
            # merge each (drop set, value) once, not on every message.
            key = (drop, value)
            merged = _merged_drops.get(key)
            if merged is None:
                merged = drop | connection_named_headers([value])
                if len(_merged_drops) >= _CACHED_DROPS:
                    _merged_drops.clear()
                _merged_drops[key] = merged
            drop = merged
        else:
            values = [raw[i][1] for i, name in enumerate(lower_names) if name == b"connection"]
            drop = drop | connection_named_headers(values)
    if len(raw) != len(lower_names):
        raise ValueError("raw and lower_names are not index-aligned")
    if drop.isdisjoint(lower_names):
        return list(raw)
    # lengths checked above: zip's own check costs more than that
    return [pair for pair, name in zip(raw, lower_names, strict=False) if name not in drop]


_CACHED_VALUE_BYTES = 64
_CACHED_DROPS = 256
_merged_drops: dict[tuple[frozenset[bytes], bytes], frozenset[bytes]] = {}
"""(drop set, the one `Connection` value) → the drop set with the headers
that value names: bounded, cleared when full."""
