"""Traffic management: what a gateway route does to the traffic it carries,
one route per feature, all in one gateway.

1. Mirroring: a copy of some requests goes to another service and nothing
   about it touches the answer — fire-and-forget at 50%; waiting for the
   copy, bounded by the mirror's timeout; and a concurrency cap that drops
   copies while a slow mirror target holds every slot.
2. Rate limits per client address, and per API key (``key =
   "header:X-Api-Key"``).
3. Retries on another instance, capped by a retry budget.
4. Timeouts: each try cut off (``per_try_timeout``) and retried elsewhere;
   504 when every try is slow.
5. A bulkhead: a few requests run, a few wait, the rest get 503 at once.
6. Outlier ejection: an instance that keeps failing leaves the rotation.

Real services run on loopback ports and register in a memory registry; the
gateway serves on a free port and httpx sends it real requests. Durations
are shortened (timeouts of 0.1 s, services 0.3 s slow) so the demo can wait
them out.

Run it: ``meshgate demo traffic-management``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import anyio
import httpx

from meshgate.demos.backends import ServiceFleet, ServiceSpec
from meshgate.demos.gateway_kit.caller import Caller, served_by
from meshgate.demos.gateway_kit.event_log import EventLog
from meshgate.demos.gateway_kit.quiet_logs import warnings_only
from meshgate.demos.gateway_kit.seeded_routes import seed_routes
from meshgate.discovery import MemoryRegistryBackend
from meshgate.gateway import GatewayServer
from meshgate.gateway.mirror import TrafficMirror

SEED = 7
SLOW = 0.3
# Far longer than sending ten requests takes, so both slots stay taken throughout.
SHADOW_LATENCY = 0.5
RATE_HEADERS = ("RateLimit-Remaining", "Retry-After")

SERVICES = (
    ServiceSpec(service="product-service", instance="product-1"),
    ServiceSpec(service="product-service", instance="product-2"),
    ServiceSpec(service="analytics-service", instance="analytics-1"),
    ServiceSpec(service="shadow-service", instance="shadow-1", latency=SHADOW_LATENCY),
    ServiceSpec(service="payment-service", instance="payment-1"),
    ServiceSpec(service="inventory-service", instance="inventory-1"),
    ServiceSpec(service="inventory-service", instance="inventory-2"),
    ServiceSpec(service="report-service", instance="report-1", latency=SLOW),
    ServiceSpec(service="report-service", instance="report-2"),
    ServiceSpec(service="export-service", instance="export-1", latency=0.2),
    ServiceSpec(service="catalog-service", instance="catalog-1"),
    ServiceSpec(service="catalog-service", instance="catalog-2"),
    ServiceSpec(service="catalog-service", instance="catalog-3"),
)


def _route(name: str, service: str, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "path": f"/api/{name}/**",
        "service_name": service,
        "strip_prefix": f"/api/{name}",
        **options,
    }


CONFIG: dict[str, Any] = {
    "middleware": {"logging": False},
    "routes": [
        _route(
            "products",
            "product-service",
            traffic_policy={
                "mirror": {
                    "service": "analytics-service",
                    "percentage": 50,
                    "wait_for_response": False,
                }
            },
        ),
        _route(
            "reviews",
            "product-service",
            traffic_policy={
                "mirror": {
                    "service": "analytics-service",
                    "percentage": 100,
                    "wait_for_response": True,
                    "timeout": "200ms",
                }
            },
        ),
        _route(
            "search",
            "product-service",
            traffic_policy={
                "mirror": {"service": "shadow-service", "percentage": 100, "max_concurrent": 2}
            },
        ),
        _route(
            "payments",
            "payment-service",
            rate_limit={"strategy": "token-bucket", "max": 3, "window": "1m", "key": "ip"},
        ),
        _route(
            "partner",
            "payment-service",
            rate_limit={
                "strategy": "token-bucket",
                "max": 3,
                "window": "1m",
                "key": "header:X-Api-Key",
            },
        ),
        _route(
            "inventory",
            "inventory-service",
            retry={
                "max_attempts": 2,
                "backoff": "fixed",
                "base_delay": "10ms",
                "budget_percent": 10,
            },
        ),
        _route(
            "reports",
            "report-service",
            traffic_policy={
                "timeout": "500ms",
                "per_try_timeout": "100ms",
                "retry": {"max_attempts": 2, "backoff": "fixed", "base_delay": "10ms"},
            },
        ),
        _route(
            "exports",
            "export-service",
            bulkhead={"max_concurrent": 2, "max_queue": 1, "queue_timeout": "1s"},
        ),
        _route(
            "catalog",
            "catalog-service",
            outlier_detection={"consecutive_failures": 3, "ejection_time": "30s"},
        ),
    ],
}


def mirror_of(gateway: GatewayServer, route: str) -> TrafficMirror:
    runtime = gateway.route_runtime(route)
    assert runtime is not None
    assert runtime.mirror is not None
    return runtime.mirror


def mirror_counts(mirror: TrafficMirror) -> str:
    stats = mirror.stats
    return f"sent={stats.sent} failed={stats.failed} dropped_busy={stats.dropped_busy}"


async def timed(caller: Caller, path: str, **options: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    reply = await caller.call("GET", path, **options)
    return reply, time.perf_counter() - started


async def mirroring(caller: Caller, fleet: ServiceFleet, gateway: GatewayServer) -> None:
    print("1. Mirroring to analytics-service; the answers never depend on the copies.")
    print("   a. /api/products: 50% of requests copied, fire-and-forget")
    analytics = fleet["analytics-1"]
    served: Counter[str] = Counter()
    for number in range(10):
        backend = served_by(await caller.call("GET", f"/api/products/{number}", quiet=True))
        served[backend["instance"] if backend else "-"] += 1
    products = mirror_of(gateway, "products")
    # The copies travel in the background: wait for those still on their way.
    await analytics.wait_for_requests(products.stats.sent + products.in_flight, within=1.0)
    answers = ", ".join(f"{name} ×{count}" for name, count in sorted(served.items()))
    print(f"  10 requests answered by {answers}; analytics-1 got {analytics.requests} copies")
    print(f"  (mirror stats: {mirror_counts(products)})")

    print("   b. /api/reviews: every request copied, the answer waits for the copy, for")
    print("      at most the mirror's timeout of 0.2 s")
    analytics.latency = 0.1
    _, took = await timed(caller, "/api/reviews/1")
    print(f"      (answered after {took:.1f} s: the copy took 0.1 s)")
    analytics.latency = 0.5
    _, took = await timed(caller, "/api/reviews/2")
    reviews = mirror_of(gateway, "reviews")
    print(f"      (answered after {took:.1f} s: the copy was cut off; {mirror_counts(reviews)})")
    analytics.latency = 0.0

    slow = f"{SHADOW_LATENCY:g} s slow"
    print(f"   c. /api/search: copies to shadow-service, {slow}; at most 2 in flight")
    search = mirror_of(gateway, "search")
    for number in range(10):
        await caller.call("GET", f"/api/search/{number}", quiet=True)
    print(f"  10 requests in a row: {search.in_flight} copies in flight, {mirror_counts(search)}")
    await fleet["shadow-1"].wait_for_requests(2, within=1.0)
    # The mirror offers no event for a finished copy: look at its count.
    with anyio.move_on_after(1.0):
        while search.in_flight:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    print(f"  once the shadow answered: {mirror_counts(search)}")


async def rate_limits(caller: Caller) -> None:
    print()
    print("2. Rate limits of 3 a minute: /api/payments per client address, /api/partner per")
    print("   X-Api-Key (key = 'header:X-Api-Key').")
    for key in ("key-a", "key-a", "key-b", "key-c"):
        await caller.call(
            "POST", "/api/payments/charge", headers={"X-Api-Key": key}, show_headers=RATE_HEADERS
        )
    print("  (one address, one allowance: another key does not help)")
    for key in ("key-a", "key-a", "key-a", "key-a", "key-b"):
        await caller.call(
            "POST", "/api/partner/charge", headers={"X-Api-Key": key}, show_headers=RATE_HEADERS
        )
    print("  (each key its own allowance: key-b still has all of its own)")


async def retries(caller: Caller, fleet: ServiceFleet, gateway: GatewayServer) -> None:
    print()
    print("3. /api/inventory: 2 attempts, the second on another instance; retries may add")
    print("   at most 10% to the route's traffic, plus 1 a second (over a 10 s window).")
    failing = fleet["inventory-2"]
    failing.fail_with = 503
    for number in range(1, 5):
        tries = failing.requests
        reply = await caller.call("GET", f"/api/inventory/{number}", quiet=True)
        note = "   (after a 503 from inventory-2)" if failing.requests > tries else ""
        backend = served_by(reply)
        who = backend["instance"] if backend else "gateway"
        print(f"  GET /api/inventory/{number}  {reply.status_code}  {who}{note}")
    print("  -- a storm of 40 requests while inventory-2 stays down --")
    before = failing.requests
    statuses: Counter[int] = Counter()
    for number in range(40):
        reply = await caller.call("GET", f"/api/inventory/s{number}", quiet=True)
        statuses[reply.status_code] += 1
    runtime = gateway.route_runtime("inventory")
    assert runtime is not None
    assert runtime.retry.budget is not None
    balance = runtime.retry.budget.balance(gateway.clock())
    first_tries = failing.requests - before
    passed_back = statuses[503]
    shown = ", ".join(f"{status} ×{count}" for status, count in sorted(statuses.items()))
    print(
        f"  {shown}: inventory-2 failed {first_tries} first tries; "
        f"{first_tries - passed_back} were retried on"
    )
    print(
        f"  inventory-1, then the budget was spent and {passed_back} got inventory-2's 503 "
        f"(budget left: {balance:.1f})"
    )
    failing.fail_with = None


async def timeouts(caller: Caller, fleet: ServiceFleet) -> None:
    print()
    print("4. /api/reports: each try cut off after 0.1 s, then one retry elsewhere; report-1")
    print(f"   takes {SLOW:g} s.")
    for number in range(1, 3):
        reply, took = await timed(caller, f"/api/reports/{number}", quiet=True)
        backend = served_by(reply)
        who = backend["instance"] if backend else "gateway"
        print(f"  GET /api/reports/{number}  {reply.status_code}  {who}   after {took:.2f} s")
    print(f"  -- report-2 slows down to {SLOW:g} s too --")
    fleet["report-2"].latency = SLOW
    _, took = await timed(caller, "/api/reports/3")
    print(f"      (after {took:.2f} s: two tries of 0.1 s each)")


async def bulkhead(http: httpx.AsyncClient) -> None:
    print()
    print("5. /api/exports: a bulkhead of 2 running and 1 waiting; exports take 0.2 s.")
    print("   Five requests at once:")
    results: list[tuple[float, int, str]] = []

    async def export(number: int) -> None:
        started = time.perf_counter()
        reply = await http.get(f"/api/exports/{number}")
        error = "" if reply.status_code < 400 else reply.json()["error"]
        results.append((time.perf_counter() - started, reply.status_code, error))

    async with anyio.create_task_group() as tg:
        for number in range(5):
            tg.start_soon(export, number)
    for took, status, error in sorted(results):
        print(f"  {status}  {error or 'exported':<10} after {took:.1f} s")


async def outliers(caller: Caller, fleet: ServiceFleet, gateway: GatewayServer) -> None:
    print()
    print("6. /api/catalog: 3 failures in a row take an instance out for 30 s.")
    fleet["catalog-3"].fail_with = 500
    served = []
    for number in range(12):
        reply = await caller.call("GET", f"/api/catalog/{number}", quiet=True)
        backend = served_by(reply)
        name = backend["instance"].removeprefix("catalog-") if backend else "-"
        served.append(name + ("✗" if reply.status_code >= 500 else ""))
    print("  12 requests went to catalog-" + " ".join(served))
    runtime = gateway.route_runtime("catalog")
    assert runtime is not None
    assert runtime.outliers is not None
    out = runtime.outliers.ejected(gateway.clock())
    shown = ", ".join(f"{name} for {left:.0f} s more" for name, left in out.items())
    print(f"  ejected: {shown}")


async def main() -> None:
    registry = MemoryRegistryBackend()
    with warnings_only():
        async with ServiceFleet(SERVICES, registry) as fleet:
            gateway = GatewayServer.from_config(CONFIG, registry)
            seed_routes(gateway, SEED)
            print("routes: " + ", ".join(route.name for route in gateway.routes))
            print()
            events = EventLog(gateway)
            async with gateway.running(listen="127.0.0.1:0") as [(host, port)]:
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                    caller = Caller(http, events)
                    await mirroring(caller, fleet, gateway)
                    await rate_limits(caller)
                    await retries(caller, fleet, gateway)
                    await timeouts(caller, fleet)
                    await bulkhead(http)
                    await outliers(caller, fleet, gateway)


if __name__ == "__main__":
    anyio.run(main)
