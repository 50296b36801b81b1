"""A route's API versions, as users write them (the reference's `VersionRoute`
in snake_case): how a request names its version, and which instances serve
each version. `VersionRouter` acts on it."""

from __future__ import annotations

import math
import re
from typing import Literal

import msgspec

from meshgate.gateway.instance_filter import InstanceFilter

VersionStrategy = Literal["header", "uri", "query", "weight"]

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION_NAME = re.compile(r"[^\s/?#&=]+")


class VersionTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One version: its share of the requests that name no version (`weight`,
    relative to the other versions' weights), whether a request may ask for it
    by name (`allow_explicit`), and which instances serve it (`filter`; by
    default those tagged with the version's name)."""

    weight: float = 0.0
    allow_explicit: bool = True
    filter: InstanceFilter | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"weight={self.weight!r} is not allowed: expected a number >= 0")


class VersionRouteConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a route picks the version that serves a request.

    `strategy` says where a request names its version: the `header`
    (``X-API-Version: v2``), a path segment (``uri``: ``/api/v2/users``), or
    the `query_param` (``?version=v2``); with ``weight`` no request can. A
    request that names none gets a version by `routes`' weights, or
    `default_version` when no version has weight.

    >>> config = msgspec.convert({
    ...     "strategy": "header", "default_version": "v1",
    ...     "routes": {"v1": {"weight": 70}, "v2": {"weight": 30, "filter": {"tags": ["v2"]}}},
    ... }, VersionRouteConfig)
    >>> config.instance_filter("v1"), config.instance_filter("v2").tags
    (InstanceFilter(tags=('v1',), metadata={}), ('v2',))
    """

    strategy: VersionStrategy = "header"
    header: str = "X-API-Version"
    query_param: str = "version"
    default_version: str | None = None
    routes: dict[str, VersionTarget]

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValueError("routes must name at least one version")
        for version in self.routes:
            if not _VERSION_NAME.fullmatch(version):
                raise ValueError(
                    f"routes has the version {version!r}: a version name must not be empty "
                    "or hold whitespace, '/', '?', '#', '&' or '='"
                )
        if not _HEADER_NAME.fullmatch(self.header):
            raise ValueError(f"header={self.header!r} is not allowed: expected a header name")
        if not self.query_param or not _VERSION_NAME.fullmatch(self.query_param):
            raise ValueError(
                f"query_param={self.query_param!r} is not allowed: expected a parameter name"
            )
        if self.default_version is not None and self.default_version not in self.routes:
            raise ValueError(
                f"default_version={self.default_version!r} is not allowed: expected one of "
                + ", ".join(repr(v) for v in self.routes)
            )
        if self.default_version is None and not any(t.weight > 0 for t in self.routes.values()):
            raise ValueError(
                "default_version is missing and no version has a weight: a request that "
                "names no version would have nowhere to go"
            )

    def instance_filter(self, version: str) -> InstanceFilter:
        """Which instances serve `version`: its `filter`, or by default those
        tagged with its name (as services register ``tags: ['v2']``)."""
        target_filter = self.routes[version].filter
        return target_filter if target_filter is not None else InstanceFilter(tags=(version,))
