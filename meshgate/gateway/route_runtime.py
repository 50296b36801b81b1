"""`RouteRuntime`: one route made ready to serve — its config turned into the
live objects that guard and route its requests (breaker, outlier detector,
rate limit, retry arithmetic, bulkhead, version router or canary, mirror,
balancer and instance source).

Built once per route (and again when the route changes); the proxy engine
only reads it. The breaker is a bare `BreakerCore`, not a `CircuitBreaker`:
the engine already reads the clock, and its transitions are the gateway's
events and bus messages.
"""

from __future__ import annotations

import functools
import random as _random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.strategies import create_balancer
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.gateway.canary_engine import CanaryEngine
from meshgate.gateway.canary_status import CANARY_EVENTS, CanaryEventInfo
from meshgate.gateway.instance_filter import InstanceFilter
from meshgate.gateway.keyed_rate_limit import KeyedRateLimit
from meshgate.gateway.mirror import SendMirror, TrafficMirror
from meshgate.gateway.outlier_detection import OutlierDetector
from meshgate.gateway.resilience_config import RateLimitKey
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.route_policies import RoutePolicies
from meshgate.gateway.upstream_source import (
    DiscoveredUpstreams,
    FilteredView,
    StaticUpstreams,
    UpstreamSource,
)
from meshgate.gateway.version_router import VersionRouter
from meshgate.resilience.backoff import Backoff
from meshgate.resilience.breaker_core import BreakerConfig, BreakerCore, CircuitState
from meshgate.resilience.bulkhead import Bulkhead
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.retry_budget import RetryBudget
from meshgate.resilience.sliding_window import window_spec

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
DEFAULT_RETRY_ON = frozenset({502, 503, 504})
CANARY_HEADER = "x-canary"

CircuitListener = Callable[["RouteRuntime", CircuitState, CircuitState], None]
"""Told (route, from, to) after each transition of a route's breaker."""

CanaryListener = Callable[["RouteRuntime", CanaryEventInfo], None]
"""Told of each event of a route's canary engine."""


@dataclass(slots=True)
class RetryPlan:
    """How a route retries: attempts in all (1 = no retry), the pause before
    each retry, which upstream statuses are worth another instance, whether
    non-idempotent requests may be retried, and the budget that caps retries
    at a share of the traffic."""

    max_attempts: int = 1
    backoff: Backoff | None = None
    retry_on: frozenset[int] = DEFAULT_RETRY_ON
    retry_non_idempotent: bool = False
    budget: RetryBudget | None = None

    def may_retry(self, method: str, request_sent: bool, now: float) -> bool:
        """Whether a failed attempt may be retried, and if so takes a permit
        from the budget. A request that never reached the upstream is always
        safe to send elsewhere."""
        if request_sent and not (self.retry_non_idempotent or method in IDEMPOTENT_METHODS):
            return False
        budget = self.budget
        return budget is None or budget.try_retry(now)

    def delay(self, attempt: int) -> float:
        return 0.0 if self.backoff is None else self.backoff.delay(attempt)


@dataclass(slots=True)
class RateLimitPlan:
    limit: KeyedRateLimit
    key_kind: RateLimitKey
    key_header: str | None

    def key_of(self, client_host: str, header_value: str | None) -> str:
        if self.key_kind == "ip":
            return client_host
        if self.key_kind == "header":
            # Requests without the header share one allowance, rather than
            # going unlimited by leaving it out.
            return header_value if header_value is not None else ""
        return ""


@dataclass(slots=True)
class VersionView:
    """One version's instances: its name (for metrics) and its filter."""

    name: str
    view: FilteredView
    canary_target: Literal["stable", "canary"] | None = None


@dataclass(slots=True)
class RouteRuntime:
    """What serves one route; see the module docstring."""

    config: RouteConfig
    policies: RoutePolicies
    source: UpstreamSource
    balancer: LoadBalancer
    breaker: BreakerCore | None
    outliers: OutlierDetector | None
    rate_limit: RateLimitPlan | None
    retry: RetryPlan
    bulkhead: Bulkhead | None
    versions: VersionRouter | None
    canary: CanaryEngine | None
    version_views: dict[str, VersionView]
    default_view: VersionView
    mirror: TrafficMirror | None
    random: _random.Random = field(default_factory=_random.Random)

    @property
    def name(self) -> str:
        return self.config.name

    def view_for(self, version: str) -> VersionView:
        return self.version_views.get(version, self.default_view)

    async def candidates(self, view: VersionView, now: float) -> Sequence[ServiceInstance]:
        """The instances a request of `view`'s version may go to now."""
        source = self.source
        if isinstance(source, StaticUpstreams):
            instances = view.view.apply(source.fixed)
        else:
            instances = view.view.apply(await source.instances())
        outliers = self.outliers
        return instances if outliers is None else outliers.admitted(instances, now)

    def static_candidates(self, view: VersionView, now: float) -> Sequence[ServiceInstance] | None:
        """`candidates` without awaiting, for fixed upstreams (None for a
        discovered service: then await `candidates`)."""
        source = self.source
        if not isinstance(source, StaticUpstreams):
            return None
        instances = view.view.apply(source.fixed)
        outliers = self.outliers
        return instances if outliers is None else outliers.admitted(instances, now)

    def canary_view(self, target: Literal["stable", "canary"]) -> VersionView:
        canary = self.canary
        assert canary is not None
        version = (
            canary.config.stable.version if target == "stable" else canary.config.canary.version
        )
        return self.version_views[version]


@dataclass(slots=True)
class RuntimeContext:
    """What every route's runtime is built with."""

    discovery: DiscoveryClient | None
    send_mirror: SendMirror
    zone: str | None = None
    clock: Clock = monotonic
    wall_clock: Clock = time.time
    on_circuit_change: CircuitListener | None = None
    on_canary_event: CanaryListener | None = None
    canary_clock: Clock = monotonic


def build_runtime(
    route: RouteConfig, policies: RoutePolicies, context: RuntimeContext
) -> RouteRuntime:
    """The live objects for `route`; `ValueError` names what does not fit
    (a discovered route without a discovery client, say)."""
    source = _source(route, context)
    balancer = _balancer(route.load_balancing_strategy, context.zone)
    runtime = RouteRuntime(
        config=route,
        policies=policies,
        source=source,
        balancer=balancer,
        breaker=None,
        outliers=_outliers(policies),
        rate_limit=_rate_limit(policies),
        retry=_retry(policies),
        bulkhead=_bulkhead(policies),
        versions=None,
        canary=None,
        version_views={},
        default_view=VersionView("default", FilteredView(InstanceFilter())),
        mirror=_mirror(route, context),
    )
    runtime.breaker = _breaker(runtime, context)
    if route.version_route is not None:
        router = VersionRouter(route.version_route)
        runtime.versions = router
        runtime.version_views = {
            version: VersionView(version, FilteredView(router.instance_filter(version)))
            for version in router.versions
        }
    elif route.canary is not None:
        engine = CanaryEngine(route.canary, clock=context.canary_clock, route=route.name)
        runtime.canary = engine
        listener = context.on_canary_event
        if listener is not None:
            for event in CANARY_EVENTS:
                engine.on(event, functools.partial(listener, runtime))
        stable, canary = route.canary.stable, route.canary.canary
        runtime.version_views = {
            stable.version: VersionView(
                stable.version, FilteredView(stable.instance_filter), "stable"
            ),
            canary.version: VersionView(
                canary.version, FilteredView(canary.instance_filter), "canary"
            ),
        }
    return runtime


def _source(route: RouteConfig, context: RuntimeContext) -> UpstreamSource:
    if route.upstreams:
        return StaticUpstreams(route.name, route.upstreams)
    assert route.service_name is not None  # the config holds exactly one target
    if context.discovery is None:
        raise ValueError(
            f"route {route.name!r} names service_name={route.service_name!r}, but the gateway "
            "has no registry to discover it from: give it a backend, or use upstreams"
        )
    return DiscoveredUpstreams(route.service_name, context.discovery)


def _balancer(strategy: str, zone: str | None) -> LoadBalancer:
    if strategy == "zone-aware":
        if zone is None:
            raise ValueError(
                "load_balancing_strategy='zone-aware' needs the gateway's own zone: "
                "set discovery.zone"
            )
        return create_balancer(strategy, zone=zone)
    return create_balancer(strategy)


def _breaker(runtime: RouteRuntime, context: RuntimeContext) -> BreakerCore | None:
    config = runtime.policies.circuit_breaker
    if config is None:
        return None
    options = config.options()
    options.pop("timeout", None)  # the route's timeouts bound each call
    window = options.pop("sliding_window", None)
    breaker_config = BreakerConfig(
        name=runtime.name,
        sliding_window=None if window is None else window_spec(window),
        **options,
    )
    listener = context.on_circuit_change
    if listener is None:
        return BreakerCore(breaker_config)

    def moved(from_state: CircuitState, to_state: CircuitState) -> None:
        listener(runtime, from_state, to_state)

    return BreakerCore(breaker_config, moved)


def _outliers(policies: RoutePolicies) -> OutlierDetector | None:
    config = policies.outlier_detection
    return None if config is None else OutlierDetector(**config.options())


def _rate_limit(policies: RoutePolicies) -> RateLimitPlan | None:
    config = policies.rate_limit
    if config is None:
        return None
    return RateLimitPlan(
        KeyedRateLimit(**config.keyed_options()), config.key_kind, config.key_header
    )


def _retry(policies: RoutePolicies) -> RetryPlan:
    config = policies.retry
    if config is None:
        return RetryPlan()
    options = config.options()
    extra = config.gateway_options()
    retry_on = extra.get("retry_on")
    budget_percent = extra.get("budget_percent", 20.0)
    return RetryPlan(
        max_attempts=options.get("max_attempts", 3),
        backoff=Backoff(
            options.get("backoff", "exponential"),
            options.get("base_delay", 1.0),
            options.get("max_delay", 30.0),
            options.get("jitter", False),
        ),
        retry_on=DEFAULT_RETRY_ON if retry_on is None else frozenset(retry_on),
        retry_non_idempotent=extra.get("retry_non_idempotent", False),
        budget=None
        if budget_percent is None
        # A floor of one retry a second keeps a quiet route able to retry at all.
        else RetryBudget(ratio=budget_percent / 100.0, min_retries_per_second=1.0),
    )


def _bulkhead(policies: RoutePolicies) -> Bulkhead | None:
    config = policies.bulkhead
    return None if config is None else Bulkhead(**config.options())


def _mirror(route: RouteConfig, context: RuntimeContext) -> TrafficMirror | None:
    policy = route.traffic_policy
    if policy is None or policy.mirror is None:
        return None
    config = policy.mirror
    source: UpstreamSource
    if config.upstreams:
        source = StaticUpstreams(f"{route.name}:mirror", config.upstreams)
    else:
        assert config.service is not None
        if context.discovery is None:
            raise ValueError(
                f"route {route.name!r} mirrors to service {config.service!r}, but the gateway "
                "has no registry to discover it from: give it a backend, or mirror to upstreams"
            )
        source = DiscoveredUpstreams(config.service, context.discovery)
    return TrafficMirror(
        source, create_balancer("round-robin"), context.send_mirror, **config.options()
    )
