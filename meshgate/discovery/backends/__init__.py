"""Registry backends: where registrations live. Each satisfies
`RegistryBackend`, so `ServiceRegistry`, `DiscoveryClient` and the registry
node never know which one they hold.

`RedisRegistryBackend` is imported on first use, because redis-py is an
optional dependency (``pip install 'meshgate[redis]'``).

>>> from meshgate.discovery.backends import MemoryRegistryBackend, RegistryBackend
>>> isinstance(MemoryRegistryBackend(), RegistryBackend)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.discovery.backends.consul import ConsulRegistryBackend
from meshgate.discovery.backends.kubernetes import KubernetesRegistryBackend
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.backends.nats_kv import NatsKvRegistryBackend
from meshgate.discovery.backends.protocol import RegistryBackend

if TYPE_CHECKING:
    from meshgate.discovery.backends.redis import RedisRegistryBackend

__all__ = [
    "ConsulRegistryBackend",
    "KubernetesRegistryBackend",
    "MemoryRegistryBackend",
    "NatsKvRegistryBackend",
    "RedisRegistryBackend",
    "RegistryBackend",
    "RegistryClient",
]


def __getattr__(name: str) -> Any:
    if name == "RedisRegistryBackend":
        from meshgate.discovery.backends.redis import RedisRegistryBackend

        return RedisRegistryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
