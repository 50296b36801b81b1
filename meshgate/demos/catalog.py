"""The runnable demos, by name: `meshgate demo` lists them, `meshgate demo NAME`
runs one. Each demo module has an `async def main() -> None`."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import cast

import msgspec


class Demo(msgspec.Struct, frozen=True):
    name: str
    category: str
    summary: str
    module: str

    def load(self) -> Callable[[], Awaitable[None]]:
        module = importlib.import_module(self.module)
        return cast(Callable[[], Awaitable[None]], module.main)


DEMOS: tuple[Demo, ...] = (
    Demo(
        "circuit-breaker",
        "resilience",
        "a flaky payment call trips the breaker, waits, probes and closes again",
        "meshgate.demos.resilience.circuit_breaker",
    ),
    Demo(
        "retry",
        "resilience",
        "fixed, linear and exponential backoff with jitter, a predicate and a budget",
        "meshgate.demos.resilience.retry",
    ),
    Demo(
        "bulkhead",
        "resilience",
        "ten calls into a bulkhead of 3 with a queue of 4: who runs, waits, is refused",
        "meshgate.demos.resilience.bulkhead",
    ),
    Demo(
        "rate-limiter",
        "resilience",
        "token bucket bursts versus sliding window, with the wait until the next permit",
        "meshgate.demos.resilience.rate_limiter",
    ),
    Demo(
        "timeout",
        "resilience",
        "a slow query cut off by with_timeout, a fast one let through",
        "meshgate.demos.resilience.timeout",
    ),
    Demo(
        "metrics",
        "resilience",
        "latencies recorded into a rolling window: failure rate, p50, p95, p99",
        "meshgate.demos.resilience.metrics",
    ),
    Demo(
        "decorators",
        "resilience",
        "breaker, retry, timeout and bulkhead stacked on a method, with a fallback",
        "meshgate.demos.resilience.decorators",
    ),
    Demo(
        "registration",
        "discovery",
        "a service registers, heartbeats, re-registers after a registry restart, leaves",
        "meshgate.demos.discovery.registration",
    ),
    Demo(
        "discovery-client",
        "discovery",
        "filters by zone, tags, metadata and status; the cache; serving through an outage",
        "meshgate.demos.discovery.client",
    ),
    Demo(
        "load-balancers",
        "discovery",
        "six strategies and p2c over 1,000 picks; zone fallback; ip-hash stickiness",
        "meshgate.demos.discovery.load_balancers",
    ),
    Demo(
        "service-client",
        "discovery",
        "HTTP over three loopback instances: round-robin, retry elsewhere, circuit per instance",
        "meshgate.demos.discovery.service_client",
    ),
    Demo(
        "config-driven",
        "gateway",
        "a gateway from one mapping: header versions, a canary stepped up, breaker and 429",
        "meshgate.demos.gateway.config_driven",
    ),
    Demo(
        "decorator-based",
        "gateway",
        "a decorated class: versions, a bad canary rolled back, breaker, 429, mirror, retry",
        "meshgate.demos.gateway.decorator_based",
    ),
    Demo(
        "programmatic",
        "gateway",
        "an empty gateway gains routes at runtime: 404, then 200, a route replaced, removed",
        "meshgate.demos.gateway.programmatic",
    ),
    Demo(
        "canary-deployment",
        "scenarios",
        "2.0.0 stepped 10 → 100% and promoted; then 2.1.0 turns bad and is rolled back",
        "meshgate.demos.scenarios.canary_deployment",
    ),
    Demo(
        "version-routing",
        "scenarios",
        "header, URI, query and weighted versions side by side; 400 for unknown ones",
        "meshgate.demos.scenarios.version_routing",
    ),
    Demo(
        "traffic-management",
        "scenarios",
        "mirroring, rate limits by IP and key, retries with a budget, timeouts, bulkhead, ejection",
        "meshgate.demos.scenarios.traffic_management",
    ),
    Demo(
        "full-stack",
        "scenarios",
        "registry, decorated gateway, canary promoted, alerts, a guarded client, metrics",
        "meshgate.demos.scenarios.full_stack",
    ),
)


def find_demo(name: str) -> Demo:
    """The demo called `name`, or a `KeyError` that lists the known names."""
    for demo in DEMOS:
        if demo.name == name:
            return demo
    known = ", ".join(d.name for d in DEMOS)
    raise KeyError(f"no demo named {name!r}; known demos: {known}")


def demos_in(category: str) -> list[Demo]:
    return [d for d in DEMOS if d.category == category]
