"""`RegistryClient`: the registry backend that lives on the other side of the
bus. It sends requests to whichever registry node answers (they share the
``registry`` queue group) and hears their events, so a service or a gateway
uses registry nodes exactly as it would use a backend of its own.

Replies map to the `RegistryBackend` contract:

- ``ok`` → the instance the registry now holds;
- code ``not_found`` → None (on `heartbeat`, its owner registers again);
- code ``invalid`` → `ValueError`, ``forbidden`` → `PermissionError`, as a
  local backend raises them;
- code ``unavailable`` / ``internal``, and every bus failure (no registry
  node, timeout, connection down) → `RegistryUnavailableError`, so callers
  fall back to what they last knew.

`get_services` asks with an empty service name, which registry nodes read
as "every service" (see `registry_node.service`).

Given a `RegistrationSigner`, the client signs every register, deregister,
heartbeat and status report it sends, as registry nodes that hold the
registration key require; a node that refuses a request (unsigned, signed
with another key, stale) answers ``forbidden``, which surfaces as
`PermissionError`. Queries and the event watch are never signed.
"""

from __future__ import annotations

import time
from typing import NoReturn

from meshgate.bus.errors import BusError
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    DeregisterRequest,
    HeartbeatRequest,
    QueryReply,
    QueryRequest,
    RegisterRequest,
    RegistryEvent,
    Reply,
    StatusReport,
)
from meshgate.bus.protocol import MessageBus, Subscription
from meshgate.bus.signing import RegistrationSigner
from meshgate.discovery.backends.protocol import RegistryEventHandler
from meshgate.discovery.errors import RegistryUnavailableError as _DiscoveryUnavailable
from meshgate.resilience.clock import Clock
from meshgate.resilience.validation import positive_number

ALL_SERVICES = ""
"""The service name that asks a registry node about every service."""


class RegistryUnavailableError(_DiscoveryUnavailable, BusError):
    """No registry node answered, or the one that did could not reach its
    backend. It is both `meshgate.discovery.errors.RegistryUnavailableError`
    and a `BusError`, so either `except` catches it.

    >>> isinstance(RegistryUnavailableError("no registry node"), BusError)
    True
    """


class RegistryClient:
    """The `RegistryBackend` (and `WatchableBackend`) served by registry
    nodes over `bus`; `timeout` bounds each request, in seconds.

    `signer` signs the requests that change the registry (see the module
    docstring); `clock` is the wall clock it stamps them with (the registry
    compares the stamp with its own clock, so it must be epoch seconds).
    `bus` stays the caller's: `aclose` does not close it.

    >>> from meshgate.bus import InProcessBus
    >>> async def main() -> None:
    ...     async with InProcessBus() as bus:
    ...         registry = RegistryClient(bus, timeout=1.0)
    ...         inst = ServiceInstance(id="user-1", name="user-service",
    ...                                host="10.0.0.5", port=3001)
    ...         await registry.register(inst, ttl=15)  # needs a registry node on `bus`

    With a registration key (the same file the registry node reads)::

        signer = RegistrationSigner(load_registration_key("/etc/meshgate/registration.key"))
        registry = RegistryClient(bus, signer=signer)
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        timeout: float = 2.0,
        signer: RegistrationSigner | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._bus = bus
        self._timeout = positive_number("timeout", timeout)
        self._signer = signer
        self._clock = clock

    @property
    def signs_requests(self) -> bool:
        """Whether register, deregister, heartbeat and status are signed."""
        return self._signer is not None

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        reply = await self._ask(
            self._bus.subjects.registry_register,
            RegisterRequest(instance=instance, ttl=ttl),
            service=instance.name,
        )
        registered = self._instance_of(reply, service=instance.name)
        if registered is None:
            # The registry cannot lose what it is creating; a node that says
            # so is broken, and the caller should treat it as down.
            raise RegistryUnavailableError(
                f"registry answered not_found to registering {instance.id!r}",
                service=instance.name,
            )
        return registered

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        reply = await self._ask(
            self._bus.subjects.registry_deregister,
            DeregisterRequest(service=service, instance_id=instance_id),
            service=service,
        )
        return self._instance_of(reply, service=service)

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        reply = await self._ask(
            self._bus.subjects.registry_heartbeat,
            HeartbeatRequest(service=service, instance_id=instance_id),
            service=service,
        )
        return self._instance_of(reply, service=service)

    async def set_status(
        self,
        service: str,
        instance_id: str,
        status: InstanceStatus,
        *,
        reason: str | None = None,
    ) -> ServiceInstance | None:
        """Report a health status; `reason` (e.g. ``"GET /health: 503"``) goes
        into the registry's log."""
        reply = await self._ask(
            self._bus.subjects.registry_status,
            StatusReport(
                service=service,
                instance_id=instance_id,
                status=InstanceStatus(status),
                reason=reason,
            ),
            service=service,
        )
        return self._instance_of(reply, service=service)

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        """Live instances of `service`, as the registry orders them (by id)."""
        if not service:
            return []
        return list(await self.query(QueryRequest(service=service)))

    async def query(self, request: QueryRequest) -> tuple[ServiceInstance, ...]:
        """The instances matching `request`'s filters, filtered by the registry.

        >>> async def healthy_in(registry: RegistryClient, zone: str) -> int:
        ...     found = await registry.query(QueryRequest(
        ...         service="user-service", zone=zone, status=InstanceStatus.UP))
        ...     return len(found)
        """
        subject = self._bus.subjects.registry_query
        try:
            reply = await self._bus.request(subject, request, QueryReply, timeout=self._timeout)
        except BusError as exc:
            _unavailable(exc, request.service)
        if not reply.ok:
            raise RegistryUnavailableError(
                f"registry could not answer a query: {reply.error}", service=request.service
            )
        return reply.instances

    async def get_services(self) -> list[str]:
        """Names of services with a live instance, ordered by name."""
        instances = await self.query(QueryRequest(service=ALL_SERVICES))
        return sorted({instance.name for instance in instances})

    async def expire(self) -> list[ServiceInstance]:
        """Always empty: registry nodes expire leases and broadcast ``expired``."""
        return []

    async def watch(self, handler: RegistryEventHandler) -> Subscription:
        """Call `handler` with every registry event of every service."""
        try:
            return await self._bus.subscribe(
                self._bus.subjects.all_registry_events, RegistryEvent, handler
            )
        except BusError as exc:
            _unavailable(exc, None)

    async def aclose(self) -> None:
        """Nothing to release: the bus belongs to the caller."""

    async def _ask(
        self,
        subject: str,
        request: RegisterRequest | DeregisterRequest | HeartbeatRequest | StatusReport,
        *,
        service: str,
    ) -> Reply:
        if self._signer is not None:
            # Signed at the last moment, so the stamp's age is the time in flight.
            request = self._signer.sign(request, now=self._clock())
        try:
            return await self._bus.request(subject, request, Reply, timeout=self._timeout)
        except BusError as exc:
            _unavailable(exc, service)

    @staticmethod
    def _instance_of(reply: Reply, *, service: str) -> ServiceInstance | None:
        if reply.ok:
            if reply.instance is None:
                raise RegistryUnavailableError(
                    "registry replied ok without the instance", service=service
                )
            return reply.instance
        error = reply.error or f"registry refused the request ({reply.code})"
        if reply.code == "not_found":
            return None
        if reply.code == "invalid":
            raise ValueError(error)
        if reply.code == "forbidden":
            raise PermissionError(error)
        raise RegistryUnavailableError(error, service=service)


def _unavailable(exc: BusError, service: str | None) -> NoReturn:
    raise RegistryUnavailableError(f"registry unavailable: {exc}", service=service) from exc
