"""`MemoryRegistryBackend`: registrations in a dict, for development, tests
and a single registry node that needs no persistence.

Lease rules, shared by every backend that keeps its own leases (memory, Redis):

- `register` stamps `last_heartbeat` (and `registered_at`, unless the caller
  already set it) with the clock and sets the deadline to `now + ttl`.
- An instance is live while `now < deadline`; at the deadline it is expired.
- `heartbeat` on a live instance moves the deadline to `now + ttl` (the ttl
  it registered with). On an expired one it returns None and leaves it for
  `expire` to report, so the registry node still broadcasts `expired`.
- `set_status` records the status without renewing the lease: a health
  checker's probe says nothing about whether the owner is still there.
- `deregister` removes the instance whatever its lease, and returns it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.resilience.clock import Clock
from meshgate.resilience.validation import positive_number


@dataclass(slots=True)
class _Lease:
    instance: ServiceInstance
    ttl: float
    deadline: float


class MemoryRegistryBackend:
    """Registrations held in this process, leases read from `clock`.

    Not thread-safe: every call must come from one event loop. The clock is
    the wall clock by default because `last_heartbeat` is wall-clock time;
    pass a fake one to drive leases in tests.

    >>> import anyio
    >>> from meshgate.resilience.clock import ManualClock
    >>> clock = ManualClock(1000.0)
    >>> backend = MemoryRegistryBackend(clock=clock)
    >>> inst = ServiceInstance(id="user-1", name="user-service", host="10.0.0.5", port=3001)
    >>> stored = anyio.run(lambda: backend.register(inst, ttl=30))
    >>> stored.last_heartbeat
    1000.0
    >>> clock.advance(30)
    >>> [i.id for i in anyio.run(backend.expire)]
    ['user-1']
    """

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._leases: dict[str, dict[str, _Lease]] = {}

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        ttl = positive_number("ttl", ttl)
        now = float(self._clock())
        stored = msgspec.structs.replace(
            instance,
            registered_at=instance.registered_at or now,
            last_heartbeat=now,
        )
        self._leases.setdefault(instance.name, {})[instance.id] = _Lease(stored, ttl, now + ttl)
        return stored

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        leases = self._leases.get(service)
        if leases is None:
            return None
        lease = leases.pop(instance_id, None)
        if not leases:
            del self._leases[service]
        return None if lease is None else lease.instance

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        now = float(self._clock())
        lease = self._live(service, instance_id, now)
        if lease is None:
            return None
        lease.instance = msgspec.structs.replace(lease.instance, last_heartbeat=now)
        lease.deadline = now + lease.ttl
        return lease.instance

    async def set_status(
        self, service: str, instance_id: str, status: InstanceStatus
    ) -> ServiceInstance | None:
        lease = self._live(service, instance_id, self._clock())
        if lease is None:
            return None
        lease.instance = msgspec.structs.replace(lease.instance, status=InstanceStatus(status))
        return lease.instance

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        """Live instances of `service`, ordered by id."""
        now = float(self._clock())
        leases = self._leases.get(service, {})
        return [
            leases[instance_id].instance
            for instance_id in sorted(leases)
            if now < leases[instance_id].deadline
        ]

    async def get_services(self) -> list[str]:
        """Services with a live instance, ordered by name."""
        now = float(self._clock())
        return sorted(
            service
            for service, leases in self._leases.items()
            if any(now < lease.deadline for lease in leases.values())
        )

    async def expire(self) -> list[ServiceInstance]:
        """Remove and return instances past their deadline, oldest deadline first."""
        now = float(self._clock())
        expired: list[_Lease] = []
        for service in list(self._leases):
            leases = self._leases[service]
            for instance_id in [i for i, lease in leases.items() if now >= lease.deadline]:
                expired.append(leases.pop(instance_id))
            if not leases:
                del self._leases[service]
        expired.sort(key=lambda lease: (lease.deadline, lease.instance.name, lease.instance.id))
        return [lease.instance for lease in expired]

    async def aclose(self) -> None:
        """Nothing to release; present so that every backend closes the same way."""

    def _live(self, service: str, instance_id: str, now: float) -> _Lease | None:
        lease = self._leases.get(service, {}).get(instance_id)
        if lease is None or now >= lease.deadline:
            return None
        return lease
