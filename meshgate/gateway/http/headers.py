"""`Headers`: the headers of one parsed message, case-insensitive and
multi-valued, in the order they were received.

The server builds it straight from httptools callbacks: the raw pairs as
received plus their lower-cased names, which the parser loop computes anyway
for its own checks. Lookups scan the lower-cased names (a C-level list scan
beats building a dict for the dozen headers a request carries).
"""

from __future__ import annotations

from collections.abc import Iterator


class Headers:
    """Case-insensitive, multi-valued, ordered view of message headers.

    Names and values stay bytes underneath (`raw`); the `str` accessors
    decode latin-1, which maps every byte one to one.

    >>> h = Headers([(b"Host", b"example.com"), (b"Accept", b"a"), (b"accept", b"b")])
    >>> h.get("host")
    'example.com'
    >>> h.get_all("ACCEPT")
    ['a', 'b']
    >>> "X-Missing" in h
    False
    """

    __slots__ = ("_lower", "_raw")

    def __init__(
        self, raw: list[tuple[bytes, bytes]], lower_names: list[bytes] | None = None
    ) -> None:
        self._raw = raw
        self._lower = lower_names if lower_names is not None else [n.lower() for n, _ in raw]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The (name, value) pairs exactly as received, in order. Do not mutate."""
        return self._raw

    @property
    def lower_names(self) -> list[bytes]:
        """Lower-cased names, index-aligned with `raw`."""
        return self._lower

    def items(self) -> list[tuple[bytes, bytes]]:
        """The raw (name, value) byte pairs, in received order."""
        return self._raw

    def get_bytes(self, lower_name: bytes) -> bytes | None:
        """First value of the header named `lower_name` (already lower-case), or None."""
        lower = self._lower
        if lower_name in lower:
            return self._raw[lower.index(lower_name)][1]
        return None

    def get_all_bytes(self, lower_name: bytes) -> list[bytes]:
        """Every value of the header named `lower_name` (already lower-case), in order."""
        raw = self._raw
        return [raw[i][1] for i, name in enumerate(self._lower) if name == lower_name]

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of header `name` (any case), decoded latin-1, or `default`."""
        value = self.get_bytes(name.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name` (any case), decoded latin-1, in order."""
        return [v.decode("latin-1") for v in self.get_all_bytes(name.lower().encode("latin-1"))]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            name = name.lower().encode("latin-1")
        elif isinstance(name, bytes):
            name = name.lower()
        else:
            return False
        return name in self._lower

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, value in self._raw:
            yield name.decode("latin-1"), value.decode("latin-1")

    def __repr__(self) -> str:
        return f"Headers({self._raw!r})"
