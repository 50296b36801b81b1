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
        "analytics-1 received 1 mirrored copy of 6 requests",
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
    "canary-deployment": (
        "[X-Canary: always]        200  orders-2.0.0 (order-service 2.0.0)",
        "[X-Canary: never]         200  orders-1.0.0 (order-service 1.0.0)",
        "evaluate() → hold: canary has 9 requests in the window, needs 10",
        "→ canary:step 10% → 25%",
        "judged on canary 0 errors in 17 requests, stable 0 in 133",
        "→ canary:step 75% → 100%",
        "→ canary:promote: 2.0.0 takes all traffic, the rollout is promoted",
        "signed-in users on 2.0.0: all 12",
        "signed-in users only ever moved from 1.0.0 to 2.0.0: True",
        "-- 2.1.0 turns bad: 20% of its requests now fail --",
        "not yet significantly (p=0.043)",
        "→ canary:rollback: 2.1.0 back from 25% to 0%",
        "P(≥ 8 failures in 36 | a true rate of 5%) = 3.3e-04 < 0.01",
        "two-proportion z-test against the stable: z = 6.27 > 2.33",
        "rollout: rolled-back, 2.1.0 at 0% (it had reached 25%)",
        "an anonymous order: 2.0.0 ×3",
    ),
    "version-routing": (
        "version='v2', resolved_by='header'",
        "version='v3', resolved_by='weight'",
        "[X-API-Version: v2]      200  user-v2-1 (2.0.0), upstream path /7",
        "GET /api/v2/accounts/7                    200  account-v2-1 (2.0.0), upstream path /7",
        "200  search-v2-1 (2.0.0), upstream path /?q=ada&version=v2",
        "400  unknown_version: unknown API version 'v9': expected one of 'v1', 'v2'",
        "unknown API version 'v4': expected one of 'v1', 'v2', 'v3'",
        "20 × ?version=v3: v1 ×18 (90.0%), v3 ×2 (10.0%)",
        "resolved_by='weight'",
        "v1 ×140 (70.0%), v2 ×50 (25.0%), v3 ×10 (5.0%)",
    ),
    "traffic-management": (
        "analytics-1 got 5 copies",
        "sent=1 failed=1 dropped_busy=0",
        "10 requests in a row: 2 copies in flight, sent=0 failed=0 dropped_busy=8",
        "once the shadow answered: sent=2 failed=0 dropped_busy=8",
        "[X-Api-Key: key-c] 429  gateway: rate_limited   RateLimit-Remaining: 0, Retry-After: 20",
        "[X-Api-Key: key-b]  200  payment-1 (payment-service 1.0.0)   RateLimit-Remaining: 2",
        "200  inventory-1   (after a 503 from inventory-2)",
        "the budget was spent and 8 got inventory-2's 503",
        "200  report-2   after",
        "504  gateway: upstream_timeout",
        "503  overloaded after 0.0 s",
        "12 requests went to catalog-1 2 3✗ 1 2 3✗ 1 2 3✗ 2 1 2",
        "ejected: catalog-3 for 30 s more",
    ),
    "full-stack": (
        "order-service  order-2    2.0.0  zone us-east-1, tags [api]",
        "DiscoveryClient: user-service tagged v2 → ['user-v2-1']",
        "routes: user_routes, order_routes",
        "X-API-Version: v2 → user-v2-1",
        "canary:step order_routes: 2.0.0 now at 100%",
        "ALERT  canary promoted: order_routes",
        "rollout promoted: ",
        "ALERT  circuit opened: order_routes",
        "gave up after 3 attempts: HTTP 500 (the service failed)",
        "client breaker orders-client: CLOSED → OPEN",
        "→ failed: HTTP 503 (circuit_open)",
        "fallback: order queued for later",
        "circuit:close order_routes",
        "client breaker orders-client: HALF_OPEN → CLOSED",
        "→ 200 from order-2",
        "Total calls: ",
        "Failure rate: ",
        "the client's own metrics: 4 orders sent, 2 failed",
    ),
}

# Seconds a demo may take. The scenarios wait out real step intervals,
# timeouts, slow services and reset timeouts (canary-deployment alone waits
# nine step intervals of 0.25 s), so they get more room than the others.
TIME_LIMITS = {"scenarios": 6.0}
DEFAULT_TIME_LIMIT = 3.0


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
    assert elapsed < TIME_LIMITS.get(demo.category, DEFAULT_TIME_LIMIT)


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
