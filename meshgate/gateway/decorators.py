"""The reference's decorator API in Python: a gateway declared as a class.

Python cannot decorate a class attribute, so each route is a method stub
whose decorators say what the route is; the stub's body never runs, and its
name is the route's name::

    @gateway(discovery={"cache_ttl": 15}, resilience={"default_timeout": "10s"})
    class ApiGateway:
        @route("/api/users/**", methods=["GET", "POST", "PUT", "DELETE"])
        @service_route("user-service", strip_prefix="/api/users")
        @version_route(strategy="header", default_version="v1", routes={
            "v1": {"weight": 70, "filter": {"tags": ["v1"]}},
            "v2": {"weight": 30, "filter": {"tags": ["v2"]}},
        })
        def user_routes(self) -> None: ...

        @route("/api/payments/**", methods=["GET", "POST"])
        @service_route("payment-service", strip_prefix="/api/payments")
        @circuit_breaker(failure_threshold=3, reset_timeout="15s")
        @rate_limit(strategy="token-bucket", max=50, window="1m")
        def payment_routes(self) -> None: ...

    config = gateway_config_from_class(ApiGateway)

`route` says which requests (path, methods, host), `service_route` where they
go; `version_route`, `canary`, `traffic_policy`, `circuit_breaker`,
`rate_limit`, `retry`, `bulkhead` and `outlier_detection` add the route's
options of those names (see `RouteConfig`). The order of the decorators does
not matter: each records its part on the stub and returns the stub itself.
Each checks its own options where it is written, so a wrong value fails at
import, naming the stub; `gateway_config_from_class` checks the whole, naming
the class and attribute. Routes are read in the order the class defines
them, base classes first; a subclass's stub replaces the base's of the same
name.

These are not `meshgate.resilience`'s decorators of the same names: those
guard a function, these configure a gateway route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from meshgate.gateway.canary_config import CanaryConfig, Duration
from meshgate.gateway.config import GatewayConfig
from meshgate.gateway.config_file import ConfigError, config_error
from meshgate.gateway.resilience_config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    OutlierDetectionConfig,
    RateLimitConfig,
    RetryConfig,
)
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.traffic_policy_config import TrafficPolicyConfig
from meshgate.gateway.version_config import VersionRouteConfig

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

ROUTE_PARTS = "__meshgate_route_parts__"
"""The stub attribute that holds each decorator's options, by decorator name."""
GATEWAY_OPTIONS = "__meshgate_gateway_options__"
"""The class attribute that holds `gateway`'s options."""

# Decorators whose options are one nested option of the route; `route` and
# `service_route` give top-level options instead.
_NESTED: dict[str, type[msgspec.Struct]] = {
    "version_route": VersionRouteConfig,
    "canary": CanaryConfig,
    "traffic_policy": TrafficPolicyConfig,
    "circuit_breaker": CircuitBreakerConfig,
    "rate_limit": RateLimitConfig,
    "retry": RetryConfig,
    "bulkhead": BulkheadConfig,
    "outlier_detection": OutlierDetectionConfig,
}


def _reraised(exc: msgspec.ValidationError | ValueError, source: str, prefix: str) -> ConfigError:
    error = config_error(exc, source)
    option = ".".join(part for part in (prefix, error.option) if part)
    return ConfigError(source, option, error.detail)


def _record(part: str, options: dict[str, Any]) -> Callable[[F], F]:
    def decorate(stub: F) -> F:
        if not callable(stub):
            raise TypeError(
                f"@{part} decorates a method stub (def name(self) -> None: ...), not {stub!r}"
            )
        source = getattr(stub, "__qualname__", repr(stub))
        kind = _NESTED.get(part)
        if kind is not None:
            try:
                msgspec.convert(options, kind)
            except msgspec.ValidationError as exc:
                raise _reraised(exc, source, part) from None
        parts: dict[str, dict[str, Any]] = vars(stub).setdefault(ROUTE_PARTS, {})
        if part in parts:
            raise ConfigError(source, "", f"@{part} is applied twice")
        parts[part] = options
        return stub

    return decorate


def _given(**options: Any) -> dict[str, Any]:
    """The options the caller wrote: None and empty lists mean "not given"."""
    return {
        key: value
        for key, value in options.items()
        if value is not None and not (isinstance(value, list | tuple) and not value)
    }


def route(
    path: str,
    *,
    methods: Sequence[str] = (),
    host: str | None = None,
    name: str | None = None,
    timeout: Duration | None = None,
    max_body_bytes: int | None = None,
    metadata: Mapping[str, str | int | float | bool] | None = None,
) -> Callable[[F], F]:
    """Which requests the route takes: `path`, `methods` (none: all), `host`.

    `name` defaults to the stub's name.
    """
    return _record(
        "route",
        _given(
            path=path,
            methods=methods,
            host=host,
            name=name,
            timeout=timeout,
            max_body_bytes=max_body_bytes,
            metadata=dict(metadata) if metadata is not None else None,
        ),
    )


def service_route(
    service_name: str | None = None,
    *,
    upstreams: Sequence[str] = (),
    load_balancing_strategy: str | None = None,
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
    rewrite: str | None = None,
) -> Callable[[F], F]:
    """Where the route sends requests: a discovered `service_name`, or fixed
    `upstreams`, and the upstream path (see `rewrite`)."""
    return _record(
        "service_route",
        _given(
            service_name=service_name,
            upstreams=upstreams,
            load_balancing_strategy=load_balancing_strategy,
            strip_prefix=strip_prefix,
            add_prefix=add_prefix,
            rewrite=rewrite,
        ),
    )


def version_route(
    *,
    routes: Mapping[str, Any],
    strategy: str = "header",
    header: str | None = None,
    query_param: str | None = None,
    default_version: str | None = None,
) -> Callable[[F], F]:
    """The route's API versions; see `VersionRouteConfig`."""
    return _record(
        "version_route",
        _given(
            strategy=strategy,
            header=header,
            query_param=query_param,
            default_version=default_version,
            routes=dict(routes),
        ),
    )


_KEEP_DEFAULT: Any = object()


def canary(
    *,
    stable: Mapping[str, Any],
    canary: Mapping[str, Any],
    promotion: Any = None,
    sticky: str | None = _KEEP_DEFAULT,
) -> Callable[[F], F]:
    """A rollout from `stable` to `canary`; see `CanaryConfig`. `sticky=None`
    draws each request afresh instead of keeping a client on one side."""
    options = _given(stable=stable, canary=canary, promotion=promotion)
    if sticky is not _KEEP_DEFAULT:
        options["sticky"] = sticky  # None is a choice here, not "not given"
    return _record("canary", options)


def traffic_policy(
    *,
    timeout: Duration | None = None,
    per_try_timeout: Duration | None = None,
    retry: Mapping[str, Any] | None = None,
    mirror: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    """Time limits, retries and mirroring; see `TrafficPolicyConfig`."""
    return _record(
        "traffic_policy",
        _given(timeout=timeout, per_try_timeout=per_try_timeout, retry=retry, mirror=mirror),
    )


def circuit_breaker(**options: Any) -> Callable[[F], F]:
    """The route's breaker, over the gateway's default; see `CircuitBreakerConfig`."""
    return _record("circuit_breaker", options)


def rate_limit(**options: Any) -> Callable[[F], F]:
    """The route's rate limit, over the gateway's default; see `RateLimitConfig`."""
    return _record("rate_limit", options)


def retry(**options: Any) -> Callable[[F], F]:
    """The route's retries, over the gateway's default; see `RetryConfig`."""
    return _record("retry", options)


def bulkhead(**options: Any) -> Callable[[F], F]:
    """The route's concurrency limit, over the gateway's default; see `BulkheadConfig`."""
    return _record("bulkhead", options)


def outlier_detection(**options: Any) -> Callable[[F], F]:
    """Ejection of failing instances; see `OutlierDetectionConfig`."""
    return _record("outlier_detection", options)


def gateway(**options: Any) -> Callable[[C], C]:
    """The gateway-wide options of a class of routes: `discovery`,
    `resilience`, `metrics`, `middleware`, and any other option of
    `GatewayConfig` but `routes`, which come from the class's stubs."""

    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError(f"@gateway decorates a class, not {cls!r}")
        if "routes" in options:
            raise ConfigError(
                cls.__qualname__, "routes", "comes from the class's @route stubs, not @gateway"
            )
        try:
            msgspec.convert(options, GatewayConfig)
        except msgspec.ValidationError as exc:
            raise _reraised(exc, cls.__qualname__, "") from None
        setattr(cls, GATEWAY_OPTIONS, dict(options))
        return cls

    return decorate


def _route_parts(cls: type) -> dict[str, dict[str, dict[str, Any]]]:
    """Each stub's parts by attribute name, base classes first."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for klass in reversed(cls.__mro__):
        for attribute, value in vars(klass).items():
            function = getattr(value, "__func__", value)  # static and class methods
            parts = getattr(function, ROUTE_PARTS, None)
            if parts is not None:
                found[attribute] = parts
            elif attribute in found:
                del found[attribute]  # overridden by something that is not a route
    return found


def route_mapping(parts: Mapping[str, Mapping[str, Any]], attribute: str) -> dict[str, Any]:
    """One route's options, as a config file would hold them, from its stub's parts."""
    mapping: dict[str, Any] = {"name": attribute}
    for part, options in parts.items():
        if part in _NESTED:
            mapping[part] = dict(options)
        else:
            mapping.update(options)
    return mapping


def gateway_config_from_class(cls: type) -> GatewayConfig:
    """The config that `cls` declares with `gateway` and its route stubs.

    >>> @gateway(discovery={"cache_ttl": 15})
    ... class Shop:
    ...     @route("/api/orders/**", methods=["GET", "POST"])
    ...     @service_route("order-service", strip_prefix="/api/orders")
    ...     @circuit_breaker(failure_threshold=3)
    ...     def order_routes(self) -> None: ...
    >>> config = gateway_config_from_class(Shop)
    >>> [(r.name, r.service_name) for r in config.routes], config.discovery.cache_ttl
    ([('order_routes', 'order-service')], 15.0)
    """
    name = cls.__qualname__
    routes: list[RouteConfig] = []
    for attribute, parts in _route_parts(cls).items():
        source = f"{name}.{attribute}"
        if "route" not in parts:
            given = ", ".join(f"@{part}" for part in parts)
            raise ConfigError(source, "", f"has {given} but no @route(path) to say what it serves")
        try:
            routes.append(msgspec.convert(route_mapping(parts, attribute), RouteConfig))
        except msgspec.ValidationError as exc:
            raise _reraised(exc, source, "") from None
    if not routes:
        raise ConfigError(
            name, "", "declares no routes: decorate method stubs with @route and @service_route"
        )
    options = getattr(cls, GATEWAY_OPTIONS, {})
    try:
        return msgspec.convert({**options, "routes": routes}, GatewayConfig)
    except msgspec.ValidationError as exc:
        raise _reraised(exc, name, "") from None
