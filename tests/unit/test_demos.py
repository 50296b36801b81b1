"""Every demo in the catalog runs to the end and tells its story; the command
line lists them all and refuses a name it does not know."""

from __future__ import annotations

import time

import anyio
import pytest

from meshgate import cli
from meshgate.demos.catalog import DEMOS, Demo

# Words each demo's account must contain: the events it exists to show.
KEY_WORDS: dict[str, tuple[str, ...]] = {
    "circuit-breaker": (
        "CLOSED→OPEN",
        "rejected at once, retry in",
        "OPEN→HALF_OPEN",
        "HALF_OPEN→CLOSED",
        "not counted",
        "50%",
        "slow calls in the window",
    ),
    "retry": ("exponential", "→ retry", "not retried", "gave up after 3 attempts", "budget"),
    "bulkhead": ("running (3 of 3)", "waits in the queue", "refused", "gave up", "limit"),
    "rate-limiter": ("allowed", "refused, next permit in", "permit after"),
    "timeout": ("timed out: database query exceeded 0.1s", "cancelled=1", "TimeoutExceededError"),
    "metrics": ("p50", "p95", "p99", "payment-service", "all (merged)"),
    "decorators": ("retry: attempt 1", "CLOSED → OPEN", "fallback: queued", "(cached)", "(live)"),
    "registration": (
        "registry ← register user-service-127.0.0.1-3001 (lease 0.6s)",
        "lease renewed",
        "unknown instance!",
        "registry.reregistered reason=heartbeat_unknown",
        "registry ← deregister",
        "expired ['user-service-10.0.0.9-3001']",
        "(one instance, the new process's lease)",
        "did you mean 'health_check_path'?",
    ),
    "discovery-client": (
        "get_instances(zone='us-east-1'): user-1, user-2, user-5",
        "get_instances(zone='eu-west-1', tags=['v2']): user-4",
        "8 picks: user-1 user-2 user-3 user-4 user-1",
        "instance:up   user-6",
        "instance:down user-1",
        "discovery.serving_stale",
        "(last-known)",
        "RegistryUnavailableError",
    ),
    "load-balancers": (
        "round-robin             250   250   250   250",
        "weighted-round-robin    500   300   100   100",
        "zone-aware              500   500     0     0",
        "least-connections",
        "p2c",
        "a and b DOWN (zone empty):  d(eu-west-1) c(eu-west-1)",
        "every client got the same instance: True",
        "to: {'e':",
        "every client is back where it was: True",
    ),
    "service-client": (
        "attempts: a:200",
        "attempts: b:503 → ",
        "circuits: a CLOSED, b OPEN, c CLOSED",
        "circuits: a CLOSED, b CLOSED, c CLOSED",
        "attempts: c:refused → ",
        "POST /orders   503",
    ),
    "config-driven": (
        "[X-API-Version: v2]",
        "200  user-v2-1 (user-service 2.0.0)",
        "400  gateway: unknown_version",
        "200  order-canary-1 (order-service 2.0.0)",
        "event canary:step route=/api/orders/** canary 2.0.0 now at 25%",
        "rollout: active, canary at 25% (step 1)",
        "event circuit:open route=/api/payments/** closed → open",
        "503  gateway: circuit_open   Retry-After: 1",
        "(payment-1 saw 5 requests: the last one never reached it)",
        "event circuit:close route=/api/payments/** half-open → closed",
        "429  gateway: rate_limited   Retry-After: ",
        "RateLimit-Limit: 10, RateLimit-Remaining: 0",
        "aggregated: ",
        "36.4%",
    ),
    "decorator-based": (
        "routes user_routes, order_routes, payment_routes, product_routes",
        "200  user-v2-1 (user-service 2.0.0)   Access-Control-Allow-Origin: *",
        "20 orders from 127.0.0.1: order-stable-1 ×20",
        "order-canary-1 ×8, order-canary-1 500 ×4",
        "event canary:rollback route=order_routes canary 2.0.0 now at 0%",
        "rollout: rolled-back, canary at 0%",
        "event circuit:open route=payment_routes closed → open",
        "503  gateway: circuit_open   Retry-After: 1",
        "event circuit:close route=payment_routes",
        "429 ×",
        "the first 429 says: Retry-After: 1, RateLimit-Limit: 50, RateLimit-Remaining: 0",
        "200  product-1   (after a 503 from product-2)",
        "analytics-1 received 2 mirrored copies of 6 requests",
        "v2 ",
    ),
    "programmatic": (
        "gateway.routes: (none)",
        "404  gateway: not_found",
        "event route:added route=/api/users/**",
        "200  user-v1-1 (user-service 1.0.0)",
        "RateLimit-Limit: 20, RateLimit-Remaining: 19",
        "event route:added route=/api/products/** (changed)",
        "429  gateway: rate_limited",
        "event route:removed route=/api/users/**",
        "remove_route of a route that is not there: False",
        "the metrics forget a removed route: ['/api/products/**']",
    ),
}


def test_every_demo_in_the_catalog_has_key_words() -> None:
    assert sorted(KEY_WORDS) == sorted(demo.name for demo in DEMOS)


@pytest.mark.parametrize("demo", DEMOS, ids=[demo.name for demo in DEMOS])
def test_a_demo_runs_quickly_and_tells_what_happened(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    main = demo.load()
    started = time.perf_counter()
    anyio.run(main)  # the asyncio backend, as `meshgate demo` runs it
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    assert out.strip(), f"{demo.name} printed nothing"
    missing = [word for word in KEY_WORDS[demo.name] if word not in out]
    assert not missing, f"{demo.name} never says {missing}:\n{out}"
    assert "Traceback" not in out
    assert elapsed < 3.0


def test_demo_without_a_name_lists_every_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    for demo in DEMOS:
        assert demo.name in out
        assert demo.summary in out


def test_an_unknown_demo_exits_2_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["demo", "no-such-demo"]) == 2
    err = capsys.readouterr().err
    assert "no-such-demo" in err
    assert "circuit-breaker" in err
