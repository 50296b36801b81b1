"""Service client: HTTP calls to a discovered service. Three real instances
listen on loopback ports; a `ServiceClient` spreads calls over them
round-robin, retries a failed call on another instance, opens a circuit per
instance so a failing one is skipped without being called, and probes it
again once the circuit's reset timeout has passed. A crashed instance (still
registered: it never said goodbye) is routed around, and a POST that never
reached it is sent elsewhere although POST is not idempotent.

Run it: ``meshgate demo service-client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import httpx

from meshgate.demos.discovery.loopback_service import LoopbackService
from meshgate.demos.discovery.printed_log import printed_logger, quiet_logger
from meshgate.discovery import (
    DiscoveryClient,
    MemoryRegistryBackend,
    ServiceClient,
    ServiceInstance,
)
from meshgate.resilience import CircuitBreaker

SERVICE = "user-service"
RESET_TIMEOUT = 0.3


class Caller:
    """Makes one call and prints it with every attempt it took, in order.

    The attempts are seen from the HTTP client's event hooks: a request hook
    fires for every attempt sent (even one whose connection is refused), a
    response hook for every answer.
    """

    def __init__(self, names_by_port: Mapping[int, str]) -> None:
        self.names_by_port = names_by_port
        self.attempts: list[str] = []
        self.http = httpx.AsyncClient(
            timeout=1.0,
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )
        self.users: ServiceClient | None = None

    async def _on_request(self, request: httpx.Request) -> None:
        # "refused" until an answer comes: the only way this demo's attempts go unanswered
        self.attempts.append(f"{self.names_by_port.get(request.url.port or 0, '?')}:refused")

    async def _on_response(self, response: httpx.Response) -> None:
        # The answer belongs to the attempt just sent: attempts are sequential.
        name = self.attempts[-1].partition(":")[0]
        self.attempts[-1] = f"{name}:{response.status_code}"

    async def call(self, method: str, path: str, **kwargs: Any) -> None:
        assert self.users is not None
        self.attempts.clear()
        try:
            response = await self.users.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            outcome = f"{type(error).__name__}"
        else:
            answered = response.json()["instance"] if response.is_success else "-"
            outcome = f"{response.status_code} from {answered}"
        tried = " → ".join(self.attempts) or "(none)"
        print(f"  {method:<4} {path:<9} {outcome:<12} attempts: {tried}")


def show_breakers(breakers: Mapping[str, CircuitBreaker]) -> None:
    states = ", ".join(f"{name} {breakers[name].state.name}" for name in sorted(breakers))
    print(f"  circuits: {states}")


async def round_robin(caller: Caller) -> None:
    print("1. Six GETs go round-robin over the three instances a, b and c.")
    for number in range(1, 7):
        await caller.call("GET", f"/users/{number}")


async def failing_instance(caller: Caller, b: LoopbackService) -> None:
    print()
    print("2. b starts answering 503. A GET that reaches b is retried at once on another")
    print("   instance; after two failures b's circuit opens, and b is not even called.")
    b.status = 503
    for number in range(7, 13):
        await caller.call("GET", f"/users/{number}")
    assert caller.users is not None
    show_breakers(caller.users.breakers)


async def recovery(caller: Caller, b: LoopbackService) -> None:
    print()
    print(f"3. b recovers. {RESET_TIMEOUT} s later its circuit lets one probe call through")
    print("   (half-open); it succeeds and the circuit closes.")
    b.status = 200
    await anyio.sleep(RESET_TIMEOUT + 0.05)
    for number in range(13, 17):
        await caller.call("GET", f"/users/{number}")
    assert caller.users is not None
    show_breakers(caller.users.breakers)


async def crash(caller: Caller, c: LoopbackService) -> None:
    print()
    print("4. c's process is killed: its port refuses connections, but it is still")
    print("   registered until its lease runs out. A POST that finds c refused was never")
    print("   sent, so it goes to another instance although POST is not idempotent.")
    c.crash()
    for number in range(1, 4):
        await caller.call("POST", "/users", json={"name": f"user {number}"})


async def not_retried(caller: Caller, a: LoopbackService, b: LoopbackService) -> None:
    print()
    print("5. A POST that reached an instance and got 503 back is not retried: the")
    print("   service may have acted on it. The 503 is returned as it came.")
    a.status = b.status = 503
    await caller.call("POST", "/orders", json={"item": "book"})
    assert caller.users is not None
    show_breakers(caller.users.breakers)


async def main() -> None:
    a, b, c = (LoopbackService(name) for name in "abc")
    async with anyio.create_task_group() as servers:
        for instance in (a, b, c):
            await servers.start(instance.serve)
        backend = MemoryRegistryBackend()
        for instance in (a, b, c):
            registration = ServiceInstance(
                id=instance.name, name=SERVICE, host="127.0.0.1", port=instance.port
            )
            await backend.register(registration, ttl=60)
        ports = ", ".join(f"{i.name} on :{i.port}" for i in (a, b, c))
        print(f"   (instances listening on loopback: {ports})")
        discovery = DiscoveryClient(backend, log=quiet_logger())
        caller = Caller({instance.port: instance.name for instance in (a, b, c)})
        caller.users = ServiceClient(
            discovery,
            service_name=SERVICE,
            load_balancing_strategy="round-robin",
            timeout=1.0,
            retries=2,
            retry_delay=0.01,
            breaker_options={"failure_threshold": 2, "reset_timeout": RESET_TIMEOUT},
            http=caller.http,
            log=printed_logger(),
        )
        async with caller.http:
            await round_robin(caller)
            await failing_instance(caller, b)
            await recovery(caller, b)
            await crash(caller, c)
            await not_retried(caller, a, b)
        servers.cancel_scope.cancel()


if __name__ == "__main__":
    anyio.run(main)
