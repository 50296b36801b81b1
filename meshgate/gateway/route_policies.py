"""What guards one route in the end: its own options laid over the gateway's
defaults, field by field (see `config_options.overlaid`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import msgspec

from meshgate.gateway.config_options import overlaid, positive_duration
from meshgate.gateway.resilience_config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    OutlierDetectionConfig,
    RateLimitConfig,
    ResilienceDefaults,
    RetryConfig,
)
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.server_limits_config import ServerLimitsConfig

S = TypeVar("S", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class RoutePolicies:
    """The guards of one route; None: the route has no such guard. Times are
    seconds. Build the toolkit's objects from each config's `options()`."""

    circuit_breaker: CircuitBreakerConfig | None
    retry: RetryConfig | None
    timeout: float | None
    per_try_timeout: float | None
    rate_limit: RateLimitConfig | None
    bulkhead: BulkheadConfig | None
    outlier_detection: OutlierDetectionConfig | None
    max_body_bytes: int | None
    """The route's own limit, else the server's; None: no limit."""


def route_policies(
    route: RouteConfig,
    defaults: ResilienceDefaults,
    limits: ServerLimitsConfig | None = None,
) -> RoutePolicies:
    """The guards of `route` over `defaults`; `ValueError` names the option
    when a route's options and the defaults do not fit together.

    >>> route = RouteConfig(path="/pay/**", service_name="payment-service",
    ...                     circuit_breaker=CircuitBreakerConfig(failure_threshold=3))
    >>> defaults = ResilienceDefaults(
    ...     default_circuit_breaker=CircuitBreakerConfig(failure_threshold=5, reset_timeout="15s"),
    ...     default_timeout="10s")
    >>> policies = route_policies(route, defaults)
    >>> policies.circuit_breaker.options(), policies.timeout
    ({'failure_threshold': 3, 'reset_timeout': 15.0}, 10.0)
    """
    policy = route.traffic_policy
    retry = route.retry
    timeout = route.timeout
    if policy is not None:
        retry = retry if retry is not None else policy.retry
        timeout = timeout if timeout is not None else policy.timeout
    if timeout is None:
        timeout = defaults.default_timeout
    if route.max_body_bytes is not None:
        max_body_bytes: int | None = route.max_body_bytes
    else:
        max_body_bytes = (limits or ServerLimitsConfig()).server_limits().max_body_bytes
    return RoutePolicies(
        circuit_breaker=_overlaid(
            "circuit_breaker", defaults.default_circuit_breaker, route.circuit_breaker
        ),
        retry=_overlaid("retry", defaults.default_retry, retry),
        timeout=positive_duration(timeout, "timeout"),
        per_try_timeout=None if policy is None else policy.per_try_timeout_seconds,
        rate_limit=_overlaid("rate_limit", defaults.default_rate_limit, route.rate_limit),
        bulkhead=_overlaid("bulkhead", defaults.default_bulkhead, route.bulkhead),
        outlier_detection=_overlaid(
            "outlier_detection", defaults.default_outlier_detection, route.outlier_detection
        ),
        max_body_bytes=max_body_bytes,
    )


def _overlaid(option: str, default: S | None, own: S | None) -> S | None:
    try:
        return overlaid(default, own)
    except ValueError as exc:
        raise ValueError(f"{option} over resilience.default_{option}: {exc}") from None
