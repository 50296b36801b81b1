"""Host patterns of routes: an exact name (``api.example.com``) or a leading
wildcard (``*.example.com``, any name that ends in ``.example.com``, at any
depth, but not ``example.com`` itself, as in nginx and Envoy).

Names compare without case and without the port, so ``API.example.com:8443``
in a Host header matches the pattern ``api.example.com``.

Specificity: an exact name beats a wildcard, and a longer wildcard suffix
beats a shorter one; a route with any host pattern beats one without.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IPV6 = re.compile(r"\[[0-9a-f:.]+\]")

NO_HOST_RANK = (2, 0)
"""The rank of a route without a host pattern: below every host pattern."""


def request_host(host: str) -> str:
    """The name in a Host header, lower-cased and without its port.

    >>> request_host("API.Example.com:8443"), request_host("[::1]:8080")
    ('api.example.com', '[::1]')
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    return host.removesuffix(".")


@dataclass(frozen=True, slots=True)
class HostPattern:
    """A parsed host pattern. Build it with `parse`.

    >>> pattern = HostPattern.parse("*.Example.com")
    >>> pattern.matches("api.example.com"), pattern.matches("example.com")
    (True, False)
    >>> HostPattern.parse("api.example.com").rank < pattern.rank
    True
    """

    text: str
    """The pattern in its normal form (lower case)."""
    is_wildcard: bool

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """The pattern `text`, checked; `ValueError` names what is wrong."""
        normal = text.strip().lower().removesuffix(".") if isinstance(text, str) else ""
        is_wildcard = normal.startswith("*.")
        name = normal[2:] if is_wildcard else normal
        if ":" in name and not _IPV6.fullmatch(name):
            raise ValueError(
                f"host={text!r} is not allowed: a host pattern matches the name without "
                "its port; leave the port out"
            )
        if not (_NAME.fullmatch(name) or (not is_wildcard and _IPV6.fullmatch(name))):
            raise ValueError(
                f"host={text!r} is not allowed: expected a host name such as "
                "'api.example.com', or '*.example.com' for any name under example.com"
            )
        return cls(normal, is_wildcard)

    @property
    def suffix(self) -> str:
        """What a matching name ends with: ``.example.com`` for ``*.example.com``."""
        return self.text[1:] if self.is_wildcard else self.text

    @property
    def rank(self) -> tuple[int, int]:
        """Lower is more specific: exact names first, then longer wildcards."""
        return (1, -len(self.text)) if self.is_wildcard else (0, 0)

    def matches(self, host: str) -> bool:
        """Whether `host`, already normalised by `request_host`, matches."""
        if self.is_wildcard:
            return host.endswith(self.text[1:]) and len(host) > len(self.text) - 1
        return host == self.text

    def __str__(self) -> str:
        return self.text
