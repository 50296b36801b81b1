"""One route, as users write it: which requests it takes, where it sends
them, and how (the reference's `Route`, `ServiceRoute`, `VersionRoute`,
`Canary`, `TrafficPolicy` and the gateway's breaker and rate limit, merged
into one Struct in snake_case)."""

from __future__ import annotations

import msgspec

from meshgate.discovery.balancers.strategies import STRATEGIES
from meshgate.gateway.canary_config import CanaryConfig, Duration
from meshgate.gateway.config_options import positive_duration
from meshgate.gateway.host_pattern import HostPattern
from meshgate.gateway.matcher import RouteTable, default_route_name, normalize_methods
from meshgate.gateway.path_pattern import PathPattern
from meshgate.gateway.resilience_config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    OutlierDetectionConfig,
    RateLimitConfig,
    RetryConfig,
)
from meshgate.gateway.rewrite import RewriteTemplate
from meshgate.gateway.traffic_policy_config import TrafficPolicyConfig
from meshgate.gateway.upstream_address import check_upstreams
from meshgate.gateway.version_config import VersionRouteConfig
from meshgate.resilience.validation import one_of, positive_int


class RouteConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A route.

    Which requests: `path` (see `path_pattern`), `methods` (empty: all;
    upper-cased), `host` (``api.example.com`` or ``*.example.com``; None: any).
    `name` names the route in metrics, events and the admin API; by default
    it is the path, after the host if there is one.

    Where to: a discovered `service_name` or fixed `upstreams` (exactly one),
    balanced by `load_balancing_strategy`; the upstream path comes from
    `strip_prefix` and `add_prefix`, or from the `rewrite` template (see
    `rewrite`). A route may split its traffic by `version_route` or roll out a
    `canary` (not both; either needs `service_name`, since both pick instances
    by version).

    How: `traffic_policy`, `circuit_breaker`, `rate_limit`, `retry`,
    `timeout`, `bulkhead`, `outlier_detection`, each over the gateway's
    defaults; `max_body_bytes` over the server's limit. `timeout` and `retry`
    may be given here or in `traffic_policy`, not in both.

    >>> route = msgspec.convert({
    ...     "path": "/api/users/**", "methods": ["get", "post"],
    ...     "service_name": "user-service", "strip_prefix": "/api/users",
    ...     "circuit_breaker": {"failure_threshold": 3, "reset_timeout": "15s"},
    ... }, RouteConfig)
    >>> route.name, route.methods
    ('/api/users/**', ('GET', 'POST'))
    """

    path: str
    methods: tuple[str, ...] = ()
    host: str | None = None
    name: str = ""
    service_name: str | None = None
    upstreams: tuple[str, ...] = ()
    load_balancing_strategy: str = "round-robin"
    strip_prefix: str | None = None
    add_prefix: str | None = None
    rewrite: str | None = None
    version_route: VersionRouteConfig | None = None
    canary: CanaryConfig | None = None
    traffic_policy: TrafficPolicyConfig | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    rate_limit: RateLimitConfig | None = None
    retry: RetryConfig | None = None
    timeout: Duration | None = None
    bulkhead: BulkheadConfig | None = None
    outlier_detection: OutlierDetectionConfig | None = None
    max_body_bytes: int | None = None
    metadata: dict[str, str | int | float | bool] = {}

    def __post_init__(self) -> None:
        pattern = PathPattern.parse(self.path)
        # Normal forms, so that equal routes compare equal and the rest of the
        # gateway reads one spelling.
        msgspec.structs.force_setattr(self, "methods", normalize_methods(self.methods))
        if self.host is not None:
            msgspec.structs.force_setattr(self, "host", HostPattern.parse(self.host).text)
        if not self.name:
            msgspec.structs.force_setattr(self, "name", default_route_name(self.path, self.host))
        elif not self.name.isprintable() or self.name.strip() != self.name:
            raise ValueError(
                f"name={self.name!r} is not allowed: expected printable text without "
                "leading or trailing spaces"
            )
        self._check_target()
        self._check_upstream_path(pattern)
        if self.version_route is not None and self.canary is not None:
            raise ValueError(
                "version_route and canary are both set: a route splits its traffic by one of them"
            )
        policy = self.traffic_policy
        if policy is not None and policy.timeout is not None and self.timeout is not None:
            raise ValueError("timeout is set twice, here and in traffic_policy: keep one")
        if policy is not None and policy.retry is not None and self.retry is not None:
            raise ValueError("retry is set twice, here and in traffic_policy: keep one")
        positive_duration(self.timeout, "timeout")
        if self.max_body_bytes is not None:
            positive_int("max_body_bytes", self.max_body_bytes)

    def _check_target(self) -> None:
        if (self.service_name is None) == (not self.upstreams):
            raise ValueError(
                "a route needs exactly one of service_name (a discovered service) and "
                "upstreams (fixed 'host:port' addresses)"
            )
        if self.service_name is not None and not self.service_name.strip():
            raise ValueError("service_name='' is not allowed: expected a service name")
        check_upstreams(self.upstreams)
        one_of("load_balancing_strategy", self.load_balancing_strategy, STRATEGIES)
        for option in ("version_route", "canary"):
            if getattr(self, option) is not None and self.service_name is None:
                raise ValueError(
                    f"{option} needs service_name: it picks instances by version, and fixed "
                    "upstreams have no versions"
                )

    def _check_upstream_path(self, pattern: PathPattern) -> None:
        for option in ("strip_prefix", "add_prefix"):
            value = getattr(self, option)
            if value is not None and not value.startswith("/"):
                raise ValueError(f"{option}={value!r} is not allowed: it must begin with '/'")
        if self.rewrite is None:
            return
        if self.strip_prefix is not None or self.add_prefix is not None:
            raise ValueError(
                "rewrite builds the whole upstream path, so strip_prefix and add_prefix "
                "cannot be set with it"
            )
        template = RewriteTemplate.parse(self.rewrite)
        for name in template.placeholders:
            if name == "**" and not pattern.has_rest:
                raise ValueError(
                    f"rewrite={self.rewrite!r} is not allowed: '{{**}}' needs a path "
                    f"ending in '**', and path={self.path!r} does not"
                )
            if name != "**" and name not in pattern.param_names:
                raise ValueError(
                    f"rewrite={self.rewrite!r} is not allowed: path={self.path!r} captures "
                    f"no {{{name}}}"
                )

    @property
    def pattern(self) -> PathPattern:
        """The parsed `path`."""
        return PathPattern.parse(self.path)

    @property
    def timeout_seconds(self) -> float | None:
        return positive_duration(self.timeout, "timeout")

    def added_to(
        self, table: RouteTable[RouteConfig], *, replace: bool = False
    ) -> RouteTable[RouteConfig]:
        """`table` with this route; see `RouteTable.with_route`.

        >>> table = RouteConfig(path="/a/**", upstreams=("h:1",)).added_to(RouteTable())
        >>> table.match("GET", "/a/b").name
        '/a/**'
        """
        return table.with_route(
            self.path,
            self,
            name=self.name,
            methods=self.methods,
            host=self.host,
            replace=replace,
        )
