"""The API gateway: routes (config, decorators or at runtime), version
routing, canaries, mirroring and per-route resilience, served by a fast
HTTP/1.1 reverse proxy.

>>> from meshgate.gateway import GatewayServer
>>> gateway = GatewayServer.from_config({
...     "routes": [
...         {"path": "/api/users/**", "upstreams": ["127.0.0.1:3001"],
...          "strip_prefix": "/api/users",
...          "circuit_breaker": {"failure_threshold": 3, "reset_timeout": "15s"}},
...     ],
... })
>>> [route.name for route in gateway.routes]
['/api/users/**']

`anyio.run(gateway.serve)` serves it (on anyio's asyncio backend) until
cancelled; `meshgate gateway --config FILE` runs it as a process on the bus.
"""

from meshgate.gateway.canary_config import CanaryConfig, CanaryTarget, PromotionConfig
from meshgate.gateway.canary_engine import CanaryEngine, RolloutFinishedError
from meshgate.gateway.canary_status import CanaryEventInfo, CanaryStats, CanaryStatus
from meshgate.gateway.config import (
    CorsConfig,
    DiscoveryConfig,
    GatewayConfig,
    MetricsConfig,
    MiddlewareConfig,
)
from meshgate.gateway.config_file import ConfigError, load_gateway_config
from meshgate.gateway.decorators import (
    bulkhead,
    canary,
    circuit_breaker,
    gateway,
    gateway_config_from_class,
    outlier_detection,
    rate_limit,
    retry,
    route,
    service_route,
    traffic_policy,
    version_route,
)
from meshgate.gateway.events import EVENTS, GatewayEvent
from meshgate.gateway.gateway_metrics import GatewayMetrics, GatewayMetricsSnapshot
from meshgate.gateway.instance_filter import InstanceFilter
from meshgate.gateway.matcher import MethodNotAllowed, RouteMatch, RouteTable
from meshgate.gateway.resilience_config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    OutlierDetectionConfig,
    RateLimitConfig,
    ResilienceDefaults,
    RetryConfig,
)
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.server import GatewayServer
from meshgate.gateway.traffic_policy_config import MirrorConfig, TrafficPolicyConfig
from meshgate.gateway.version_config import VersionRouteConfig, VersionTarget
from meshgate.gateway.version_router import UnknownVersionError, VersionResolution, VersionRouter

__all__ = [
    "EVENTS",
    "BulkheadConfig",
    "CanaryConfig",
    "CanaryEngine",
    "CanaryEventInfo",
    "CanaryStats",
    "CanaryStatus",
    "CanaryTarget",
    "CircuitBreakerConfig",
    "ConfigError",
    "CorsConfig",
    "DiscoveryConfig",
    "GatewayConfig",
    "GatewayEvent",
    "GatewayMetrics",
    "GatewayMetricsSnapshot",
    "GatewayServer",
    "InstanceFilter",
    "MethodNotAllowed",
    "MetricsConfig",
    "MiddlewareConfig",
    "MirrorConfig",
    "OutlierDetectionConfig",
    "PromotionConfig",
    "RateLimitConfig",
    "ResilienceDefaults",
    "RetryConfig",
    "RolloutFinishedError",
    "RouteConfig",
    "RouteMatch",
    "RouteTable",
    "TrafficPolicyConfig",
    "UnknownVersionError",
    "VersionResolution",
    "VersionRouteConfig",
    "VersionRouter",
    "VersionTarget",
    "bulkhead",
    "canary",
    "circuit_breaker",
    "gateway",
    "gateway_config_from_class",
    "load_gateway_config",
    "outlier_detection",
    "rate_limit",
    "retry",
    "route",
    "service_route",
    "traffic_policy",
    "version_route",
]
