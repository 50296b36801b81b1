"""Decorator-based gateway: the reference's recommended style, in Python. A
class declares the gateway: `@gateway` gives its defaults, and each route
is a method stub whose decorators say which requests it takes
(`@route`), where they go (`@service_route`) and how (`@version_route`,
`@canary`, `@traffic_policy`, `@circuit_breaker`, `@rate_limit`).
``GatewayServer.from_class(ApiGateway, registry)`` builds it.

Real services run on loopback ports and register in a memory registry; the
gateway serves on a free port and httpx sends it real requests:

1. user-service, v1 70% / v2 30%, or as the X-API-Version header says;
2. order-service rolling out a canary that fails 40% of its requests: the
   gateway's own evaluation rolls it back;
3. payment-service: an outage opens the circuit; a burst meets the rate limit;
4. product-service, with half its traffic mirrored to analytics-service and
   a failed try retried on another instance.

The reference's long durations are shortened (reset timeouts of 0.5 s,
retry delays of 50 ms) so the demo can wait them out.

Run it: ``meshgate demo decorator-based``.
"""

from __future__ import annotations

from collections import Counter

import anyio
import httpx

from meshgate.demos.backends import ServiceFleet
from meshgate.demos.backends.shop import shop_services
from meshgate.demos.gateway_kit.caller import Caller, served_by
from meshgate.demos.gateway_kit.event_log import EventLog
from meshgate.demos.gateway_kit.metrics_table import print_metrics
from meshgate.demos.gateway_kit.quiet_logs import warnings_only
from meshgate.demos.gateway_kit.seeded_routes import seed_routes
from meshgate.discovery import MemoryRegistryBackend
from meshgate.gateway import (
    GatewayServer,
    canary,
    circuit_breaker,
    gateway,
    rate_limit,
    route,
    service_route,
    traffic_policy,
    version_route,
)

SEED = 11
RESET_TIMEOUT = 0.5
CANARY_ERROR_RATE = 0.4
REFUSAL_HEADERS = ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@gateway(
    discovery={"cache_enabled": True, "cache_ttl": "15s"},
    resilience={
        "default_circuit_breaker": {"failure_threshold": 5, "reset_timeout": RESET_TIMEOUT},
        "default_retry": {"max_attempts": 2, "backoff": "exponential", "base_delay": "50ms"},
        "default_timeout": "10s",
    },
    metrics={"enabled": True},
    middleware={"cors": True, "logging": False, "request_id": True},
)
class ApiGateway:
    @route("/api/users/**", methods=["GET", "POST", "PUT", "DELETE"])
    @service_route("user-service", load_balancing_strategy="round-robin", strip_prefix="/api/users")
    @version_route(
        strategy="header",
        header="X-API-Version",
        default_version="v1",
        routes={
            "v1": {"weight": 70, "allow_explicit": True, "filter": {"tags": ["v1"]}},
            "v2": {"weight": 30, "allow_explicit": True, "filter": {"tags": ["v2"]}},
        },
    )
    def user_routes(self) -> None: ...

    @route("/api/orders/**", methods=["GET", "POST"])
    @service_route("order-service", strip_prefix="/api/orders")
    @canary(
        stable={"version": "1.0.0", "weight": 90, "filter": {"tags": ["stable"]}},
        canary={"version": "2.0.0", "weight": 10, "filter": {"tags": ["canary"]}},
        promotion={
            "strategy": "error-rate",
            "error_threshold": 5,
            "evaluation_window": "30s",
            "auto_promote": True,
            "auto_rollback": True,
            "steps": [10, 25, 50, 75, 100],
            "step_interval": "15s",
        },
    )
    def order_routes(self) -> None: ...

    @route("/api/payments/**", methods=["GET", "POST"])
    @service_route("payment-service", strip_prefix="/api/payments")
    @circuit_breaker(failure_threshold=3, reset_timeout=RESET_TIMEOUT)
    @rate_limit(strategy="token-bucket", max=50, window="1m")
    def payment_routes(self) -> None: ...

    @route("/api/products/**", methods=["GET"])
    @service_route("product-service", strip_prefix="/api/products")
    @traffic_policy(
        mirror={"service": "analytics-service", "percentage": 50, "wait_for_response": False},
        timeout="5s",
        retry={"max_attempts": 2, "backoff": "fixed", "base_delay": "50ms"},
    )
    def product_routes(self) -> None: ...


def tally(replies: list[httpx.Response]) -> str:
    """Who served `replies`, as ``name ×count`` (the status when the gateway did)."""
    served: Counter[str] = Counter()
    for reply in replies:
        backend = served_by(reply)
        name = f"{backend['instance']}" if backend else f"gateway {reply.status_code}"
        if backend and reply.status_code >= 500:
            name += f" {reply.status_code}"
        served[name] += 1
    return ", ".join(f"{name} ×{count}" for name, count in sorted(served.items()))


async def users(caller: Caller) -> None:
    print("1. user_routes — X-API-Version picks the version; without it, v1 70% / v2 30%.")
    await caller.call(
        "GET",
        "/api/users/1",
        headers={"X-API-Version": "v2", "Origin": "https://shop.example"},
        show_headers=("Access-Control-Allow-Origin",),
    )
    replies = [await caller.call("GET", f"/api/users/{n}", quiet=True) for n in range(20)]
    print(f"  20 requests naming no version: {tally(replies)}")


async def orders(caller: Caller, server: GatewayServer) -> None:
    print()
    print(f"2. order_routes — canary 2.0.0 at 10%; it fails {CANARY_ERROR_RATE:.0%} of requests.")
    print("   Clients stick to one side by address, and 127.0.0.1 is on the stable side:")
    replies = [await caller.call("GET", f"/api/orders/{n}", quiet=True) for n in range(20)]
    print(f"  20 orders from 127.0.0.1: {tally(replies)}")
    print("  a tester sends 12 requests with X-Canary: always:")
    replies = [
        await caller.call("GET", f"/api/orders/t{n}", headers={"X-Canary": "always"}, quiet=True)
        for n in range(12)
    ]
    print(f"  {tally(replies)}")
    print("  (one failure short of order_routes' default circuit breaker, 5 failures: breakers")
    print("   are per route, so a bad canary could open the circuit on the stable's traffic too)")
    print("  the gateway's evaluation (start_canaries, every second) judges the canary:")
    await caller.events.wait_for("canary:rollback", within=2.0)
    caller.print_events()
    status = server.canaries()["order_routes"].get_status()
    print(f"  rollout: {status.state}, canary at {status.canary_weight:g}%")
    await caller.call("GET", "/api/orders/after", headers={"X-Canary": "always"})
    print("  (a rolled-back canary gets nothing, whatever the header says)")


async def payments(caller: Caller, fleet: ServiceFleet) -> None:
    print()
    print("3. payment_routes — circuit breaker (3 failures, reset 0.5 s), 50 per minute.")
    payment = fleet["payment-1"]
    print("  -- payment-service goes down: every request gets 500 --")
    payment.fail_with = 500
    for _ in range(4):
        await caller.call("POST", "/api/payments/charge", show_headers=("Retry-After",))
    print(f"  (payment-1 saw {payment.requests} requests: the 4th never reached it)")
    print(f"  -- payment-service recovers; wait {RESET_TIMEOUT} s --")
    payment.fail_with = None
    await anyio.sleep(RESET_TIMEOUT + 0.05)
    await caller.call("POST", "/api/payments/charge", show_headers=("RateLimit-Remaining",))
    print("  -- a burst of 50 charges --")
    replies = [await caller.call("POST", "/api/payments/charge", quiet=True) for _ in range(50)]
    statuses = Counter(reply.status_code for reply in replies)
    print("  " + ", ".join(f"{status} ×{count}" for status, count in sorted(statuses.items())))
    refused = next(reply for reply in replies if reply.status_code == 429)
    headers = ", ".join(f"{name}: {refused.headers[name]}" for name in REFUSAL_HEADERS)
    print(f"  the first 429 says: {headers}")


async def products(caller: Caller, fleet: ServiceFleet, server: GatewayServer) -> None:
    print()
    print("4. product_routes — 50% mirrored to analytics-service (fire-and-forget);")
    print("   a failed try goes to another instance (retry: 2 attempts).")
    product_2 = fleet["product-2"]
    product_2.fail_with = 503
    for number in range(1, 7):
        tries = product_2.requests
        reply = await caller.call("GET", f"/api/products/{number}", quiet=True)
        note = "   (after a 503 from product-2)" if product_2.requests > tries else ""
        backend = served_by(reply)
        who = backend["instance"] if backend else "gateway"
        print(f"  GET /api/products/{number}  {reply.status_code}  {who}{note}")
    analytics = fleet["analytics-1"]
    runtime = server.route_runtime("product_routes")
    assert runtime is not None
    mirror = runtime.mirror
    assert mirror is not None
    stats = mirror.stats
    # Copies go out in the background: wait for those still on their way.
    await analytics.wait_for_requests(stats.sent + stats.failed + mirror.in_flight, within=1.0)
    copies = "copy" if analytics.requests == 1 else "copies"
    print(f"  analytics-1 received {analytics.requests} mirrored {copies} of 6 requests")
    print(f"  (mirror stats: sent={stats.sent} failed={stats.failed} dropped={stats.dropped_busy})")


async def main() -> None:
    registry = MemoryRegistryBackend()
    with warnings_only():
        services = shop_services(canary_error_rate=CANARY_ERROR_RATE)
        async with ServiceFleet(services, registry) as fleet:
            server = GatewayServer.from_class(ApiGateway, registry)
            names = ", ".join(r.name for r in server.routes)
            print(f"GatewayServer.from_class(ApiGateway, registry): routes {names}")
            seed_routes(server, SEED)
            server.start_canaries()
            events = EventLog(server)
            async with server.running(listen="127.0.0.1:0") as [(host, port)]:
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                    caller = Caller(http, events)
                    print()
                    await users(caller)
                    await orders(caller, server)
                    await payments(caller, fleet)
                    await products(caller, fleet, server)
            print()
            print("5. gateway.get_metrics().get_snapshot()")
            print_metrics(server.get_metrics().get_snapshot())


if __name__ == "__main__":
    anyio.run(main)
