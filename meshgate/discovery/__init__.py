"""Service discovery: services register themselves, clients find them, cache
them, pick one per request, and call it over HTTP.

>>> import anyio
>>> from meshgate.discovery import DiscoveryClient, MemoryRegistryBackend, ServiceRegistry
>>> async def main() -> None:
...     backend = MemoryRegistryBackend()
...     config = {"name": "user-service", "port": 3001, "zone": "us-east-1",
...               "metadata": {"version": "2.0.0", "weight": 80}, "tags": ["api", "v2"]}
...     async with ServiceRegistry(config, backend) as registry:
...         await registry.register()
...         client = DiscoveryClient(backend, cache_ttl=30.0, zone="us-east-1")
...         instance = await client.get_instance("user-service", "zone-aware")
...         print(instance.address, instance.version)
>>> import structlog.testing
>>> with structlog.testing.capture_logs():  # the example's output without its logs
...     anyio.run(main)
127.0.0.1:3001 2.0.0

Backends that need optional dependencies or other packages
(`RedisRegistryBackend`, `NatsKvRegistryBackend`, `RegistryClient`) are
imported on first use, so this package imports without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends.consul import ConsulRegistryBackend
from meshgate.discovery.backends.kubernetes import KubernetesRegistryBackend
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.backends.protocol import RegistryBackend, WatchableBackend
from meshgate.discovery.balancers import (
    STRATEGIES,
    IpHashBalancer,
    LeastConnectionsBalancer,
    LoadBalancer,
    PowerOfTwoChoicesBalancer,
    RandomBalancer,
    RoundRobinBalancer,
    WeightedRoundRobinBalancer,
    ZoneAwareBalancer,
    create_balancer,
)
from meshgate.discovery.discovery_client import (
    DiscoveryClient,
    DiscoveryStats,
    InstanceEvent,
    InstanceHandler,
)
from meshgate.discovery.errors import (
    DiscoveryError,
    InvalidRegistrationError,
    NoInstanceAvailableError,
    RegistryUnavailableError,
)
from meshgate.discovery.service_client import (
    IDEMPOTENT_METHODS,
    RETRYABLE_STATUS_CODES,
    ServiceClient,
)
from meshgate.discovery.service_registry import (
    ServiceRegistration,
    ServiceRegistry,
    load_registration,
)

if TYPE_CHECKING:
    from meshgate.discovery.backends.bus_client import RegistryClient
    from meshgate.discovery.backends.nats_kv import NatsKvRegistryBackend
    from meshgate.discovery.backends.redis import RedisRegistryBackend

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRYABLE_STATUS_CODES",
    "STRATEGIES",
    "ConsulRegistryBackend",
    "DiscoveryClient",
    "DiscoveryError",
    "DiscoveryStats",
    "InstanceEvent",
    "InstanceHandler",
    "InstanceStatus",
    "InvalidRegistrationError",
    "IpHashBalancer",
    "KubernetesRegistryBackend",
    "LeastConnectionsBalancer",
    "LoadBalancer",
    "MemoryRegistryBackend",
    "NatsKvRegistryBackend",
    "NoInstanceAvailableError",
    "PowerOfTwoChoicesBalancer",
    "RandomBalancer",
    "RedisRegistryBackend",
    "RegistryBackend",
    "RegistryClient",
    "RegistryUnavailableError",
    "RoundRobinBalancer",
    "ServiceClient",
    "ServiceInstance",
    "ServiceRegistration",
    "ServiceRegistry",
    "WatchableBackend",
    "WeightedRoundRobinBalancer",
    "ZoneAwareBalancer",
    "create_balancer",
    "load_registration",
]

# name -> module that defines it, imported on first access
_LAZY = {
    "NatsKvRegistryBackend": "meshgate.discovery.backends.nats_kv",
    "RedisRegistryBackend": "meshgate.discovery.backends.redis",
    "RegistryClient": "meshgate.discovery.backends.bus_client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
