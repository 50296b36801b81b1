"""Config-driven gateway: the whole gateway from one mapping, as the
reference's ``GatewayServer.fromConfig`` — the kind of config a deployment
reads from a file or the environment.

Real services run on loopback ports and register in a memory registry; the
gateway discovers them, serves on a free port, and httpx sends it real
requests. Three routes: user-service split by the ``X-API-Version`` header
(v1 80% / v2 20% when a request names none), order-service rolling out a
canary that the gateway steps from 10% to 25% on its own, and
payment-service behind a circuit breaker and a token-bucket rate limit.

The reference's durations are shortened (a reset timeout of 0.5 s, not
15 s) so the demo can wait them out; the shapes are the reference's.

Run it: ``meshgate demo config-driven``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

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
from meshgate.gateway import GatewayServer

SEED = 7
RESET_TIMEOUT = 0.5
RATE_HEADERS = ("RateLimit-Remaining",)
REFUSAL_HEADERS = ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

CONFIG: dict[str, Any] = {
    "discovery": {"cache_enabled": True, "cache_ttl": "15s"},
    "resilience": {
        "default_circuit_breaker": {"failure_threshold": 5, "reset_timeout": "10s"},
        "default_timeout": "10s",
    },
    "middleware": {"logging": False},
    "routes": [
        {
            "path": "/api/users/**",
            "service_name": "user-service",
            "strip_prefix": "/api/users",
            "version_route": {
                "strategy": "header",
                "header": "X-API-Version",
                "default_version": "v1",
                "routes": {
                    "v1": {"weight": 80, "filter": {"tags": ["v1"]}},
                    "v2": {"weight": 20, "filter": {"tags": ["v2"]}},
                },
            },
        },
        {
            "path": "/api/orders/**",
            "service_name": "order-service",
            "strip_prefix": "/api/orders",
            "canary": {
                "stable": {"version": "1.0.0", "weight": 90, "filter": {"tags": ["stable"]}},
                "canary": {"version": "2.0.0", "weight": 10, "filter": {"tags": ["canary"]}},
                "promotion": {
                    "strategy": "error-rate",
                    "error_threshold": 5,
                    "evaluation_window": "30s",
                    "min_requests": 5,
                    "steps": [10, 25, 50, 75, 100],
                    "step_interval": "0.5s",
                },
                # A fresh draw per request, so one client (this demo) sees the split;
                # by default a client sticks to one side by its address.
                "sticky": None,
            },
        },
        {
            "path": "/api/payments/**",
            "service_name": "payment-service",
            "strip_prefix": "/api/payments",
            "circuit_breaker": {"failure_threshold": 3, "reset_timeout": RESET_TIMEOUT},
            "rate_limit": {"strategy": "token-bucket", "max": 10, "window": "1m"},
        },
    ],
}


async def users(caller: Caller) -> None:
    print("1. /api/users/** — the X-API-Version header picks the version.")
    await caller.call("GET", "/api/users/1", headers={"X-API-Version": "v1"})
    await caller.call("GET", "/api/users/2", headers={"X-API-Version": "v2"})
    await caller.call("GET", "/api/users/3", headers={"X-API-Version": "v9"})
    served: Counter[str] = Counter()
    for number in range(20):
        reply = await caller.call("GET", f"/api/users/{number}", quiet=True)
        backend = served_by(reply)
        served[backend["instance"] if backend else str(reply.status_code)] += 1
    shown = ", ".join(f"{name} ×{count}" for name, count in sorted(served.items()))
    print(f"  20 requests naming no version (weights v1 80, v2 20): {shown}")


async def orders(caller: Caller, gateway: GatewayServer) -> None:
    print()
    print("2. /api/orders/** — canary 2.0.0 at 10%, stepped by the gateway's own")
    print("   evaluation (start_canaries) once 5 canary requests look healthy.")
    served: Counter[str] = Counter()
    for number in range(40):
        reply = await caller.call("GET", f"/api/orders/{number}", quiet=True)
        backend = served_by(reply)
        served[f"{backend['version']} ({backend['instance']})" if backend else "-"] += 1
    shown = ", ".join(f"{name} ×{count}" for name, count in sorted(served.items()))
    print(f"  40 orders: {shown}")
    print("  a tester forces the canary with the X-Canary header:")
    for number in range(3):
        await caller.call("GET", f"/api/orders/t{number}", headers={"X-Canary": "always"})
    stepped = await caller.events.wait_for("canary:step", within=2.0)
    caller.print_events()
    status = gateway.canaries()["/api/orders/**"].get_status()
    print(
        f"  rollout: {status.state}, canary at {status.canary_weight:g}% "
        f"(step {status.current_step})" + ("" if stepped else " — no step yet")
    )


async def charge(caller: Caller, show_headers: tuple[str, ...] = RATE_HEADERS) -> int:
    reply = await caller.call(
        "POST", "/api/payments/charge", json={"amount": 42}, show_headers=show_headers
    )
    return reply.status_code


async def payments(caller: Caller, fleet: ServiceFleet) -> None:
    print()
    print("3. /api/payments/** — circuit breaker (3 failures, reset 0.5 s) and a")
    print("   token bucket of 10 per minute for each client.")
    payment = fleet["payment-1"]
    for _ in range(2):
        await charge(caller)
    print("  -- payment-service goes down: every request gets 500 --")
    payment.fail_with = 500
    for _ in range(4):
        await charge(caller, ("Retry-After",))
    print(f"  (payment-1 saw {payment.requests} requests: the last one never reached it)")
    print(f"  -- payment-service recovers; wait {RESET_TIMEOUT} s for the reset timeout --")
    payment.fail_with = None
    await anyio.sleep(RESET_TIMEOUT + 0.05)
    await charge(caller)
    print("  -- a burst: the bucket runs dry --")
    while await charge(caller, REFUSAL_HEADERS) != 429:
        pass


async def main() -> None:
    registry = MemoryRegistryBackend()
    with warnings_only():
        async with ServiceFleet(shop_services(), registry) as fleet:
            print("GatewayServer.from_config(CONFIG, registry): 3 routes; instances of")
            print("  " + ", ".join(f"{s.name} {s.spec.version}" for s in fleet))
            gateway = GatewayServer.from_config(CONFIG, registry)
            seed_routes(gateway, SEED)
            gateway.start_canaries()
            caller_events = EventLog(gateway)
            async with gateway.running(listen="127.0.0.1:0") as [(host, port)]:
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                    caller = Caller(http, caller_events)
                    print()
                    await users(caller)
                    await orders(caller, gateway)
                    await payments(caller, fleet)
            print()
            print("4. gateway.get_metrics().get_snapshot()")
            print_metrics(gateway.get_metrics().get_snapshot())


if __name__ == "__main__":
    anyio.run(main)
