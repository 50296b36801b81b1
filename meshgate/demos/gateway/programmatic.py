"""Programmatic gateway: routes added and removed while the gateway serves,
as the reference's ``gateway.addRoute(...)``. It starts with no routes at
all (``GatewayServer.from_config({"routes": []}, registry)``), so every
request gets 404; `add_route` makes a route live from the next request on,
`add_route(..., replace=True)` changes one in place, and `remove_route`
takes one away (requests in flight keep the route they matched).

Real services run on loopback ports and register in a memory registry; the
gateway serves on a free port and httpx sends it real requests.

Run it: ``meshgate demo programmatic``.
"""

from __future__ import annotations

import anyio
import httpx

from meshgate.demos.backends import ServiceFleet
from meshgate.demos.backends.shop import shop_services
from meshgate.demos.gateway_kit.caller import Caller
from meshgate.demos.gateway_kit.event_log import EventLog
from meshgate.demos.gateway_kit.metrics_table import print_metrics
from meshgate.demos.gateway_kit.quiet_logs import warnings_only
from meshgate.discovery import MemoryRegistryBackend
from meshgate.gateway import GatewayServer

RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining")

USERS = {
    "path": "/api/users/**",
    "service_name": "user-service",
    "strip_prefix": "/api/users",
    "circuit_breaker": {"failure_threshold": 3, "reset_timeout": "10s"},
}
PRODUCTS = {
    "path": "/api/products/**",
    "service_name": "product-service",
    "strip_prefix": "/api/products",
    "rate_limit": {"strategy": "token-bucket", "max": 20, "window": "1m"},
}
PRODUCTS_STRICTER = {
    **PRODUCTS,
    "rate_limit": {"strategy": "token-bucket", "max": 2, "window": "1m"},
}


def show_routes(gateway: GatewayServer) -> None:
    names = ", ".join(route.name for route in gateway.routes) or "(none)"
    print(f"  gateway.routes: {names}")


async def run(caller: Caller, gateway: GatewayServer) -> None:
    print("1. No routes yet: everything is 404.")
    show_routes(gateway)
    await caller.call("GET", "/api/users/1")
    await caller.call("GET", "/api/products/1")

    print()
    print("2. add_route(users, with a circuit breaker) and add_route(products, with a")
    print("   rate limit of 20 per minute) while the gateway serves.")
    gateway.add_route(USERS)
    caller.print_events()
    gateway.add_route(PRODUCTS)
    caller.print_events()
    show_routes(gateway)
    for number in range(1, 4):
        await caller.call("GET", f"/api/users/{number}")
    for number in range(1, 3):
        await caller.call("GET", f"/api/products/{number}", show_headers=RATE_HEADERS)

    print()
    print("3. add_route(products, replace=True): the same route, now 2 per minute. The")
    print("   new route starts with a fresh allowance.")
    gateway.add_route(PRODUCTS_STRICTER, replace=True)
    caller.print_events()
    for number in range(3, 6):
        await caller.call(
            "GET", f"/api/products/{number}", show_headers=("Retry-After", *RATE_HEADERS)
        )

    print()
    print("4. gateway.get_metrics().get_snapshot() with both routes live")
    print_metrics(gateway.get_metrics().get_snapshot())

    print()
    print("5. remove_route('/api/users/**'): users are gone again, products stay.")
    gateway.remove_route("/api/users/**")
    caller.print_events()
    show_routes(gateway)
    await caller.call("GET", "/api/users/1")
    print(f"  remove_route of a route that is not there: {gateway.remove_route('/api/users/**')}")
    snapshot = gateway.get_metrics().get_snapshot()
    print(f"  the metrics forget a removed route: {sorted(snapshot.routes)}")


async def main() -> None:
    registry = MemoryRegistryBackend()
    with warnings_only():
        async with ServiceFleet(shop_services(), registry):
            gateway = GatewayServer.from_config({"routes": []}, registry)
            print('GatewayServer.from_config({"routes": []}, registry)')
            events = EventLog(gateway)
            async with gateway.running(listen="127.0.0.1:0") as [(host, port)]:
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                    print()
                    await run(Caller(http, events), gateway)


if __name__ == "__main__":
    anyio.run(main)
