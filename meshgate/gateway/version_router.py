"""`VersionRouter`: which API version serves a request.

Rules, in order:

1. A request may name its version where the route's strategy says: the
   header (``X-API-Version: v2``), a path segment (``uri``), or a query
   parameter (``query``); with ``weight``, it cannot. A header or parameter
   that is empty names nothing.
2. A named version the route does not have is `UnknownVersionError`: the
   gateway answers 400 and lists the known versions, rather than guess.
3. A named version that allows it (`allow_explicit`) is the answer,
   `resolved_by` the strategy. One that does not is ignored: the request
   goes on as if it named none.
4. Otherwise the versions' weights choose: a draw `rand` in [0, 1) lands in
   one version's share of the cumulative weights (found by bisection), and
   `resolved_by` is ``"weight"``. With no weight anywhere, `default_version`
   is the answer, ``"default"``.

With ``uri``, the version segment is the first segment that is one of the
route's versions or looks like one (``v`` and a number: ``v3``, ``v2.1``),
and `path` comes back without it (``/api/v2/users`` gives ``/api/users``),
so the upstream sees the path it serves.

Nothing here reads a clock or does I/O; the draw is `rand` when given (a
test, or `sticky_fraction` for a sticky choice), else the router's
`random.Random`.
"""

from __future__ import annotations

import bisect
import random as _random
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl

import msgspec

from meshgate.gateway.instance_filter import InstanceFilter
from meshgate.gateway.version_config import VersionRouteConfig, VersionTarget

ResolvedBy = Literal["header", "uri", "query", "weight", "default"]

_LOOKS_LIKE_VERSION = re.compile(r"[vV]\d+(?:\.\d+)*")


class HeaderLookup(Protocol):
    def get(self, name: str, /) -> Any: ...


class VersionRequest(Protocol):
    """What the router reads of a request. `headers.get` should not mind the
    case of the name (a plain dict is searched without case anyway). A
    mapping with the keys ``method``, ``path`` and ``headers`` does as well."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def headers(self) -> HeaderLookup: ...


class UnknownVersionError(ValueError):
    """A request named a version that the route does not have.

    >>> str(UnknownVersionError("v9", ("v1", "v2")))
    "unknown API version 'v9': expected one of 'v1', 'v2'"
    """

    def __init__(self, version: str, known: tuple[str, ...]) -> None:
        self.version = version
        self.known = known
        super().__init__(
            f"unknown API version {version!r}: expected one of " + ", ".join(repr(v) for v in known)
        )


class VersionResolution(msgspec.Struct, frozen=True, kw_only=True):
    """The version for a request, what decided it, and the path to go on
    with (changed only by the ``uri`` strategy)."""

    version: str
    resolved_by: ResolvedBy
    path: str


def _field(request: VersionRequest | Mapping[str, Any], name: str) -> Any:
    if isinstance(request, Mapping):
        return request.get(name)
    return getattr(request, name, None)


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        # A plain dict is case-sensitive, and clients and frameworks spell
        # header names in every case: look again without case.
        lowered = name.lower()
        value = headers.get(lowered)
        if value is None:
            value = next(
                (v for k, v in headers.items() if isinstance(k, str) and k.lower() == lowered),
                None,
            )
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return None if value is None else str(value)


def _query_value(request: VersionRequest | Mapping[str, Any], path: str, name: str) -> str | None:
    query = _field(request, "query")
    if isinstance(query, Mapping):
        value = query.get(name)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        return None if value is None else str(value)
    if not isinstance(query, str):
        query = path.partition("?")[2]
    for key, value in parse_qsl(query.removeprefix("?")):
        if key == name:
            return value
    return None


class VersionRouter:
    """Resolves the API version of requests to one route.

    >>> router = VersionRouter({
    ...     "strategy": "header", "header": "X-API-Version", "default_version": "v1",
    ...     "routes": {"v1": {"weight": 70}, "v2": {"weight": 25}, "v3": {"weight": 5}},
    ... })
    >>> router.resolve({"method": "GET", "path": "/api/users",
    ...                 "headers": {"x-api-version": "v2"}})
    VersionResolution(version='v2', resolved_by='header', path='/api/users')
    >>> router.resolve({"method": "GET", "path": "/api/users", "headers": {}}, rand=0.5)
    VersionResolution(version='v1', resolved_by='weight', path='/api/users')
    >>> router.resolve({"method": "GET", "path": "/api/users", "headers": {}}, rand=0.96).version
    'v3'
    """

    __slots__ = ("_config", "_cumulative", "_random", "_total", "_weighted")

    def __init__(
        self,
        config: VersionRouteConfig | Mapping[str, Any],
        *,
        random: _random.Random | None = None,
    ) -> None:
        if not isinstance(config, VersionRouteConfig):
            config = msgspec.convert(config, VersionRouteConfig)
        self._config = config
        weighted = [(v, t.weight) for v, t in config.routes.items() if t.weight > 0]
        self._weighted = tuple(version for version, _ in weighted)
        self._cumulative = tuple(accumulate(weight for _, weight in weighted))
        self._total = self._cumulative[-1] if self._cumulative else 0.0
        self._random = random if random is not None else _random.Random()

    @property
    def config(self) -> VersionRouteConfig:
        return self._config

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(self._config.routes)

    def target(self, version: str) -> VersionTarget:
        return self._config.routes[version]

    def instance_filter(self, version: str) -> InstanceFilter:
        """Which instances serve `version`."""
        return self._config.instance_filter(version)

    def resolve(
        self, request: VersionRequest | Mapping[str, Any], *, rand: float | None = None
    ) -> VersionResolution:
        """The version for `request` (see the module docstring for the rules).

        `rand`, in [0, 1), is the draw for a weighted choice; without it the
        router draws one, only when it needs one.
        """
        path = _field(request, "path") or "/"
        config = self._config
        strategy = config.strategy
        named: str | None = None
        if strategy == "header":
            named = _header(_field(request, "headers"), config.header)
        elif strategy == "query":
            named = _query_value(request, path, config.query_param)
        elif strategy == "uri":
            named, path = self._version_in_path(path)
        if named is not None:
            named = named.strip()
        if named:
            target = config.routes.get(named)
            if target is None:
                raise UnknownVersionError(named, self.versions)
            if target.allow_explicit:
                return VersionResolution(version=named, resolved_by=strategy, path=path)
        if self._total > 0:
            draw = self._random.random() if rand is None else rand
            version = self.weighted_version(draw)
            assert version is not None  # there are weights
            return VersionResolution(version=version, resolved_by="weight", path=path)
        assert config.default_version is not None  # the config makes sure of it
        return VersionResolution(version=config.default_version, resolved_by="default", path=path)

    def weighted_version(self, rand: float) -> str | None:
        """The version whose share of the weights holds `rand` in [0, 1), or
        None when no version has weight.

        >>> router = VersionRouter({"routes": {"v1": {"weight": 70}, "v2": {"weight": 30}}})
        >>> router.weighted_version(0.6999), router.weighted_version(0.7)
        ('v1', 'v2')
        """
        if not 0.0 <= rand < 1.0:
            raise ValueError(f"rand={rand!r} is not allowed: expected a number in [0, 1)")
        if not self._weighted:
            return None
        index = bisect.bisect_right(self._cumulative, rand * self._total)
        # rand * total can round up to total itself; that draw is the last version's.
        return self._weighted[min(index, len(self._weighted) - 1)]

    def _version_in_path(self, target: str) -> tuple[str | None, str]:
        """The version segment of `target` and the target without it."""
        path, mark, query = target.partition("?")
        parts = path.split("/")
        routes = self._config.routes
        for index, part in enumerate(parts):
            if part and (part in routes or _LOOKS_LIKE_VERSION.fullmatch(part)):
                rest = "/".join(parts[:index] + parts[index + 1 :]) or "/"
                if not rest.startswith("/"):
                    rest = "/" + rest
                return part, rest + mark + query
        return None, target
