"""The HTTP server's limits as a config file writes them: the options of
`meshgate.gateway.http.ServerLimits`, with durations also as strings such as
``"10s"``. A limit left out keeps the server's default."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType

from meshgate.gateway.canary_config import Duration
from meshgate.gateway.config_options import constructor_options, positive_duration
from meshgate.gateway.http.limits import ServerLimits
from meshgate.resilience.validation import positive_int


class ServerLimitsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the gateway's `ServerLimits` (see it for what each bounds).

    Sizes are bytes (`max_body_bytes` None: no limit; a route may set its
    own); durations are seconds or strings.

    >>> limits = ServerLimitsConfig(header_timeout="5s", max_body_bytes=1024)
    >>> limits.options()
    {'max_body_bytes': 1024, 'header_timeout': 5.0}
    >>> limits.server_limits().header_timeout
    5.0
    """

    max_header_bytes: int | UnsetType = UNSET
    max_header_count: int | UnsetType = UNSET
    max_url_bytes: int | UnsetType = UNSET
    max_body_bytes: int | UnsetType | None = UNSET
    header_timeout: Duration | UnsetType = UNSET
    body_timeout: Duration | UnsetType = UNSET
    idle_timeout: Duration | UnsetType = UNSET
    send_timeout: Duration | UnsetType = UNSET
    linger_timeout: Duration | UnsetType = UNSET
    keep_alive_requests: int | UnsetType = UNSET

    SIZES: ClassVar[tuple[str, ...]] = (
        "max_header_bytes",
        "max_header_count",
        "max_url_bytes",
        "max_body_bytes",
        "keep_alive_requests",
    )
    DURATIONS: ClassVar[tuple[str, ...]] = (
        "header_timeout",
        "body_timeout",
        "idle_timeout",
        "send_timeout",
        "linger_timeout",
    )

    def __post_init__(self) -> None:
        for option in self.SIZES:
            value = getattr(self, option)
            if value is not UNSET and value is not None:
                positive_int(option, value)
        for option in self.DURATIONS:
            value = getattr(self, option)
            if value is not UNSET:
                positive_duration(value, option)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `ServerLimits`, durations in seconds."""
        return constructor_options(self, self.DURATIONS)

    def server_limits(self) -> ServerLimits:
        """The limits the HTTP server takes."""
        return ServerLimits(**self.options())
