"""The whole gateway's configuration: the reference's `GatewayServer.fromConfig`
shape in snake_case, plus what a process needs (addresses, limits, bus).

Decoding is validation. Every Struct refuses unknown keys, msgspec checks
types and names the path of a wrong value, and each `__post_init__` checks
what types cannot say, raising `ValueError` that names the option. Loading
files and turning msgspec's errors into readable ones is `config_file`'s job.

A minimal config, in TOML::

    [[routes]]
    path = "/api/users/**"
    service_name = "user-service"
    strip_prefix = "/api/users"
    circuit_breaker = { failure_threshold = 3, reset_timeout = "15s" }
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, UnsetType

from meshgate.bus.subjects import validate_subject
from meshgate.gateway.canary_config import Duration
from meshgate.gateway.config_options import constructor_options, positive_duration
from meshgate.gateway.matcher import RouteSpec, RouteTable
from meshgate.gateway.resilience_config import ResilienceDefaults
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.route_policies import RoutePolicies, route_policies
from meshgate.gateway.server_limits_config import ServerLimitsConfig
from meshgate.gateway.upstream_address import parse_host_port


class DiscoveryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the gateway's `DiscoveryClient`; `zone` is the gateway's own
    zone, which the ``zone-aware`` strategy prefers.

    >>> DiscoveryConfig(cache_ttl="15s").options()
    {'cache_enabled': True, 'cache_ttl': 15.0, 'refresh_interval': None, 'zone': None}
    """

    cache_enabled: bool = True
    cache_ttl: Duration = 30.0
    refresh_interval: Duration | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        self.options()

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `DiscoveryClient` (after the backend)."""
        return {
            "cache_enabled": self.cache_enabled,
            "cache_ttl": positive_duration(self.cache_ttl, "cache_ttl"),
            "refresh_interval": positive_duration(self.refresh_interval, "refresh_interval"),
            "zone": self.zone,
        }


class MetricsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Whether the gateway records per-route metrics (and publishes them to the
    canary controller)."""

    enabled: bool = True


class CorsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the gateway's `CorsPolicy`; left out, its defaults apply.

    >>> CorsConfig(allow_origins=("https://app.example.com",), max_age="10m").options()
    {'allow_origins': ('https://app.example.com',), 'max_age': 600}
    """

    allow_origins: tuple[str, ...] | UnsetType = UNSET
    allow_methods: tuple[str, ...] | UnsetType = UNSET
    allow_headers: tuple[str, ...] | UnsetType = UNSET
    expose_headers: tuple[str, ...] | UnsetType = UNSET
    allow_credentials: bool | UnsetType = UNSET
    max_age: Duration | UnsetType = UNSET

    def __post_init__(self) -> None:
        self.options()

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `CorsPolicy`; `max_age` in whole seconds, as
        the Access-Control-Max-Age header has it."""
        options = constructor_options(self, ("max_age",))
        if "max_age" in options:
            options["max_age"] = int(options["max_age"])
        return options


class MiddlewareConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the gateway does around every request: `cors` (True for the
    default policy, or its options), `logging` of each request, a
    `request_id` header made when the client sent none, an `access_log` file
    (None: none), and the `log_format` of the process's logs.

    >>> MiddlewareConfig(cors=True).cors_config == CorsConfig()
    True
    """

    cors: bool | CorsConfig = False
    logging: bool = True
    request_id: bool = True
    access_log: str | None = None
    log_format: Literal["json", "console"] | None = None
    """None: JSON lines unless stderr is a terminal."""

    @property
    def cors_config(self) -> CorsConfig | None:
        """The CORS options, or None when CORS is off."""
        if isinstance(self.cors, CorsConfig):
            return self.cors
        return CorsConfig() if self.cors else None


def parse_listen_address(address: str, *, option: str) -> tuple[str, int]:
    """The host and port of a ``host:port`` to listen on; port 0 lets the
    system choose one.

    >>> parse_listen_address("0.0.0.0:8080", option="listen")
    ('0.0.0.0', 8080)
    """
    return parse_host_port(address, option=option, lowest_port=0)


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a gateway replica is configured with.

    `routes` (see `RouteConfig`); `discovery`, `resilience` (defaults for
    every route), `metrics`, `middleware` and server `limits`; the addresses
    it serves on, `listen` and `admin_listen` (the admin API, which asks for
    `admin_token` as a bearer token when one is set); `drain_timeout`, how
    long a stopping replica lets requests in flight finish; `replica_id` (by
    default one is made at start); the bus: `nats` (a URL; None: standalone,
    or the local cluster's when the CLI says so) and `bus_prefix`.

    >>> config = msgspec.convert({"routes": [
    ...     {"path": "/api/users/**", "service_name": "user-service"},
    ...     {"path": "/api/users/{id}", "methods": ["GET"], "service_name": "user-service"},
    ... ]}, GatewayConfig)
    >>> config.route_table().match("GET", "/api/users/42").name
    '/api/users/{id}'
    """

    routes: tuple[RouteConfig, ...] = ()
    discovery: DiscoveryConfig = DiscoveryConfig()
    resilience: ResilienceDefaults = ResilienceDefaults()
    metrics: MetricsConfig = MetricsConfig()
    middleware: MiddlewareConfig = MiddlewareConfig()
    listen: str = "127.0.0.1:8080"
    admin_listen: str = "127.0.0.1:9090"
    admin_token: str | None = None
    limits: ServerLimitsConfig = ServerLimitsConfig()
    drain_timeout: Duration = 15.0
    replica_id: str | None = None
    nats: str | None = None
    bus_prefix: str = "mesh"

    ADDRESSES: ClassVar[tuple[str, ...]] = ("listen", "admin_listen")

    def __post_init__(self) -> None:
        for option in self.ADDRESSES:
            parse_listen_address(getattr(self, option), option=option)
        if self.listen == self.admin_listen and not self.listen.endswith(":0"):
            raise ValueError(f"listen and admin_listen are both {self.listen!r}: they must differ")
        if self.admin_token is not None and not self.admin_token.strip():
            raise ValueError("admin_token='' is not allowed: leave it out for no token")
        positive_duration(self.drain_timeout, "drain_timeout")
        if self.replica_id is not None and not self.replica_id.strip():
            raise ValueError("replica_id='' is not allowed: leave it out to have one made")
        try:
            validate_subject(self.bus_prefix)
        except ValueError as exc:
            raise ValueError(f"bus_prefix={self.bus_prefix!r} is not allowed: {exc}") from None
        # Refused here, with the routes' names, rather than when a replica
        # builds its table: clashing routes are a config mistake.
        try:
            self.route_table()
        except ValueError as exc:
            raise ValueError(f"routes: {exc}") from None
        for index, route in enumerate(self.routes):
            try:
                self.policies_for(route)
            except ValueError as exc:
                raise ValueError(f"routes[{index}] ({route.name!r}): {exc}") from None

    @property
    def drain_timeout_seconds(self) -> float:
        seconds = positive_duration(self.drain_timeout, "drain_timeout")
        assert seconds is not None  # a Duration is never None
        return seconds

    def route_table(self) -> RouteTable[RouteConfig]:
        """The routes as a table to match requests against."""
        return RouteTable.build(
            RouteSpec(route.path, route, route.name, route.methods, route.host)
            for route in self.routes
        )

    def policies_for(self, route: RouteConfig) -> RoutePolicies:
        """`route`'s guards over this config's defaults and limits."""
        return route_policies(route, self.resilience, self.limits)
