"""The one interface every registry backend satisfies, and so does the bus
client that talks to registry nodes: `ServiceRegistry` and `DiscoveryClient`
are written against it and never know which one they hold."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import RegistryEvent
from meshgate.bus.protocol import Subscription


@runtime_checkable
class RegistryBackend(Protocol):
    """Where registrations live.

    Leases: `register` stores the instance with a time to live (seconds);
    `heartbeat` renews it. A backend that cannot expire keys by itself
    removes leases past their deadline when `expire` is called and returns
    what it removed, so that the registry node can broadcast `expired`.
    Read-only backends (Kubernetes) raise `PermissionError` on writes.

    >>> async def show(backend: RegistryBackend) -> None:
    ...     for instance in await backend.get_instances("user-service"):
    ...         print(instance.address, instance.status)
    """

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        """Store or replace `instance` under a lease of `ttl` seconds; returns what was stored."""
        ...

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        """Remove an instance; returns it, or None when it was not there."""
        ...

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        """Renew the lease; None when the backend no longer knows the instance
        (its owner must register again)."""
        ...

    async def set_status(
        self, service: str, instance_id: str, status: InstanceStatus
    ) -> ServiceInstance | None:
        """Record a health status; returns the updated instance or None when unknown."""
        ...

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        """Every live (unexpired) instance of `service`, whatever its status."""
        ...

    async def get_services(self) -> list[str]:
        """Names of the services with at least one live instance."""
        ...

    async def expire(self) -> list[ServiceInstance]:
        """Remove instances whose lease ran out and return them."""
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...


RegistryEventHandler = Callable[[RegistryEvent], Awaitable[None]]


@runtime_checkable
class WatchableBackend(Protocol):
    """A backend that pushes changes (the bus client: events from registry
    nodes). `DiscoveryClient` keeps its cache fresh from them and refreshes
    periodically only as a safety net; other backends are polled."""

    async def watch(self, handler: RegistryEventHandler) -> Subscription:
        """Call `handler` with every registered / deregistered / expired / status event."""
        ...
