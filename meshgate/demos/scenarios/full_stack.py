"""Full stack: the reference's "Putting It All Together" — discovery, the
gateway and the resilience toolkit in one program.

1. Services register with `ServiceRegistry` in a memory registry backend
   (each a real HTTP service on a loopback port).
2. A decorated class declares the gateway (`@gateway`, `@route`,
   `@service_route`, `@version_route`, `@canary`, `@circuit_breaker`);
   ``GatewayServer.from_class(ProductionGateway, backend)`` builds it and
   ``start_canaries()`` lets it judge its own canary.
3. Events become alerts: ``canary:promote`` and ``circuit:open``.
4. Users are routed by version; orders flow while the gateway rolls
   order-service 2.0.0 out step by step and promotes it.
5. Then 2.0.0 breaks. The shop's front end calls the gateway through a
   `CircuitBreaker` around a `RetryPolicy` (the toolkit, client side): the
   gateway's circuit opens, then the client's own, which answers at once
   from a fallback until both probe, find the service back, and close.
6. ``gateway.get_metrics().get_snapshot().aggregated``: the totals.

The reference's durations are shortened (a step interval of 0.2 s, not
15 s; reset timeouts of 0.5 s) so the demo can wait them out.

Run it: ``meshgate demo full-stack``.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx

from meshgate.demos.backends import ServiceFleet, ServiceSpec
from meshgate.demos.gateway_kit.caller import served_by
from meshgate.demos.gateway_kit.metrics_table import print_metrics
from meshgate.demos.gateway_kit.quiet_logs import warnings_only
from meshgate.demos.gateway_kit.seeded_routes import seed_routes
from meshgate.discovery import DiscoveryClient, MemoryRegistryBackend, ServiceRegistry
from meshgate.gateway import (
    GatewayServer,
    canary,
    circuit_breaker,
    gateway,
    route,
    service_route,
    version_route,
)
from meshgate.gateway.events import EventHandler
from meshgate.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    MetricsRegistry,
    RetryExhaustedError,
    RetryPolicy,
)

SEED = 1
RESET_TIMEOUT = 0.5
ROLLOUT_LIMIT = 5.0

SERVICES = (
    ServiceSpec(service="user-service", instance="user-v1-1", zone="us-east-1", tags=("api", "v1")),
    ServiceSpec(
        service="user-service",
        instance="user-v2-1",
        version="2.0.0",
        zone="us-east-1",
        tags=("api", "v2"),
    ),
    ServiceSpec(service="order-service", instance="order-1", zone="us-east-1", tags=("api",)),
    ServiceSpec(
        service="order-service",
        instance="order-2",
        version="2.0.0",
        zone="us-east-1",
        tags=("api",),
    ),
)


@gateway(
    discovery={"cache_enabled": True, "cache_ttl": "10s"},
    resilience={"default_timeout": "10s"},
    metrics={"enabled": True},
    middleware={"logging": False},
)
class ProductionGateway:
    @route("/api/users/**")
    @service_route("user-service", strip_prefix="/api/users")
    @version_route(
        strategy="header",
        default_version="v1",
        routes={
            "v1": {"weight": 70, "filter": {"tags": ["v1"]}},
            "v2": {"weight": 30, "filter": {"tags": ["v2"]}},
        },
    )
    def user_routes(self) -> None: ...

    @route("/api/orders/**")
    @service_route("order-service")
    @canary(
        # No filters: instances are picked by their metadata.version.
        stable={"version": "1.0.0", "weight": 90},
        canary={"version": "2.0.0", "weight": 10},
        promotion={
            "strategy": "error-rate",
            "error_threshold": 5,
            "auto_promote": True,
            "auto_rollback": True,
            "steps": [10, 25, 50, 75, 100],
            "step_interval": "200ms",
            "min_requests": 5,
        },
        # A fresh draw per request: the demo's one client would otherwise
        # stick to one side by its address.
        sticky=None,
    )
    @circuit_breaker(failure_threshold=3, reset_timeout=RESET_TIMEOUT)
    def order_routes(self) -> None: ...


def alert(text: str) -> None:
    print(f"  ALERT  {text}")


def watch(server: GatewayServer) -> None:
    """Alerts for what needs a human, plain lines for the rest."""
    server.on("canary:promote", lambda e: alert(f"canary promoted: {e['route']}"))
    server.on("circuit:open", lambda e: alert(f"circuit opened: {e['route']}"))
    server.on("canary:step", _print_step)
    server.on("circuit:half-open", _noted("circuit:half-open"))
    server.on("circuit:close", _noted("circuit:close"))


def _print_step(details: dict[str, Any]) -> None:
    version, weight = details["canary_version"], details["canary_weight"]
    print(f"    canary:step {details['route']}: {version} now at {weight:g}%")


def _noted(event: str) -> EventHandler:
    def note(details: dict[str, Any]) -> None:
        print(f"    {event} {details['route']}")

    return note


async def register(
    fleet: ServiceFleet, backend: MemoryRegistryBackend, stack: AsyncExitStack
) -> None:
    """Each service registers itself, as the reference's ServiceRegistry does;
    leaving `stack` deregisters them."""
    print("1. Services register with ServiceRegistry (memory backend):")
    for service in fleet:
        spec = service.spec
        config = {
            "name": spec.service,
            "host": service.host,
            "port": service.port,
            "zone": spec.zone,
            "tags": list(spec.tags),
            "metadata": {"version": spec.version},
            "instance_id": spec.instance,
        }
        registry = await stack.enter_async_context(ServiceRegistry(config, backend))
        instance = await registry.register()
        tags = ", ".join(instance.tags)
        print(
            f"  {instance.name:<14} {instance.id:<10} {instance.metadata['version']}  "
            f"zone {instance.zone}, tags [{tags}]"
        )
    found = await DiscoveryClient(backend).get_instances("user-service", tags=["v2"])
    print(f"  DiscoveryClient: user-service tagged v2 → {[i.id for i in found]}")


async def users(http: httpx.AsyncClient) -> None:
    print()
    print("3. /api/users/** by the X-API-Version header, else v1 70 / v2 30:")
    backend = served_by(await http.get("/api/users/7", headers={"X-API-Version": "v2"}))
    print(f"  X-API-Version: v2 → {backend and backend['instance']}")
    served: Counter[str] = Counter()
    for number in range(20):
        backend = served_by(await http.get(f"/api/users/{number}"))
        served[backend["instance"] if backend else "-"] += 1
    print("  20 without the header → " + ", ".join(f"{k} ×{v}" for k, v in sorted(served.items())))


async def rollout(http: httpx.AsyncClient, server: GatewayServer) -> None:
    print()
    print("4. Orders flow while the gateway rolls order-service 2.0.0 out (evaluating")
    print("   every 50 ms, a step at most every 0.2 s once 5 canary orders look healthy):")
    engine = server.canaries()["order_routes"]
    served: Counter[str] = Counter()
    with anyio.move_on_after(ROLLOUT_LIMIT):
        while engine.state == "active":
            backend = served_by(await http.get(f"/api/orders/{sum(served.values())}"))
            served[backend["version"] if backend else "-"] += 1
    status = engine.get_status()
    total = sum(served.values())
    split = ", ".join(f"{version} ×{count}" for version, count in sorted(served.items()))
    print(f"  rollout {status.state}: {total} orders during it went to {split}")


class OrdersClient:
    """The shop's front end: every order goes to the gateway through a
    circuit breaker around a retry policy, and is measured."""

    def __init__(self, http: httpx.AsyncClient, metrics: MetricsRegistry) -> None:
        self.http = http
        self.breaker = CircuitBreaker(
            failure_threshold=2,
            reset_timeout=RESET_TIMEOUT,
            name="orders-client",
            on_state_change=self._moved,
        )
        self.retry = RetryPolicy(
            max_attempts=3,
            backoff="exponential",
            base_delay=0.02,
            retry_predicate=_is_transient,
            on_retry=self._retrying,
        )
        self.metrics = metrics.get_or_create("orders-client")

    @staticmethod
    def _moved(from_state: CircuitState, to_state: CircuitState) -> None:
        print(f"    client breaker orders-client: {from_state.name} → {to_state.name}")

    @staticmethod
    def _retrying(error: Exception, attempt: int) -> None:
        print(f"    client retry after attempt {attempt}: {_short(error)}")

    async def _post(self, path: str) -> httpx.Response:
        reply = await self.http.post(path, json={"items": 1})
        reply.raise_for_status()
        return reply

    async def place_order(self, number: int) -> None:
        print(f"  order #{number}:")
        started = time.perf_counter()
        try:
            reply = await self.breaker.execute(
                self.retry.execute, self._post, f"/api/orders/{number}"
            )
        except CircuitOpenError as error:
            # Nothing was sent: the fallback answers, and the order waits.
            print(f"    → not sent ({error}); fallback: order queued for later")
            return
        except (RetryExhaustedError, httpx.HTTPError) as error:
            self.metrics.record_failure((time.perf_counter() - started) * 1000)
            print(f"    → failed: {_short(error)}")
            return
        self.metrics.record_success((time.perf_counter() - started) * 1000)
        backend = served_by(reply)
        print(f"    → {reply.status_code} from {backend and backend['instance']}")


def _is_transient(error: Exception) -> bool:
    """Worth another attempt: a broken connection, or a 5xx other than 503.
    A 503 from the gateway is a refusal on purpose (its circuit is open, or
    it is full): trying again at once cannot help."""
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
        return status >= 500 and status != 503
    return isinstance(error, httpx.TransportError)


def _short(error: BaseException) -> str:
    if isinstance(error, RetryExhaustedError):
        return f"gave up after {error.attempts} attempts: {_short(error.last_error)}"
    if isinstance(error, httpx.HTTPStatusError):
        reply = error.response
        body = served_by(reply)
        said = "the service failed" if body else reply.json().get("error")
        return f"HTTP {reply.status_code} ({said})"
    return repr(error)


async def outage(client: OrdersClient, fleet: ServiceFleet) -> None:
    print()
    print("5. order-service 2.0.0 breaks. The client: CircuitBreaker(failure_threshold=2)")
    print("   around RetryPolicy(3 attempts, exponential from 20 ms, on a 5xx but 503).")
    broken = fleet["order-2"]
    broken.fail_with = 500
    await client.place_order(1)
    await client.place_order(2)
    await client.place_order(3)
    print(f"  -- 2.0.0 is fixed; wait {RESET_TIMEOUT:g} s for both reset timeouts --")
    broken.fail_with = None
    await anyio.sleep(RESET_TIMEOUT + 0.1)
    await client.place_order(4)
    await client.place_order(5)


async def main() -> None:
    backend = MemoryRegistryBackend()
    client_metrics = MetricsRegistry()
    with warnings_only():
        # Started without a registry: each instance registers itself below.
        async with ServiceFleet(SERVICES) as fleet, AsyncExitStack() as registrations:
            await register(fleet, backend, registrations)
            print()
            print("2. GatewayServer.from_class(ProductionGateway, backend); start_canaries()")
            server = GatewayServer.from_class(ProductionGateway, backend)
            seed_routes(server, SEED)
            server.start_canaries(interval=0.05)
            watch(server)
            print("  routes: " + ", ".join(r.name for r in server.routes))
            async with server.running(listen="127.0.0.1:0") as [(host, port)]:
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                    await users(http)
                    await rollout(http, server)
                    await outage(OrdersClient(http, client_metrics), fleet)
            print()
            print("6. gateway.get_metrics().get_snapshot()")
            metrics = server.get_metrics().get_snapshot()
            print(f"  Total calls: {metrics.aggregated.total_calls}")
            print(f"  Failure rate: {metrics.aggregated.failure_rate:.1f}%")
            print_metrics(metrics)
            mine = client_metrics.get_or_create("orders-client").get_snapshot()
            print(
                f"  the client's own metrics: {mine.total_calls} orders sent, "
                f"{mine.failure_calls} failed, p99 {mine.p99:.0f} ms"
            )


if __name__ == "__main__":
    anyio.run(main)
