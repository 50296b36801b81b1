"""`RegistryService`: the registry node's work, on any `MessageBus` and any
`RegistryBackend`.

It answers ``mesh.registry.register | deregister | heartbeat | status |
query`` in the queue group ``registry``, so several nodes share the
requests; validates each one (`registry_node.validation`); stores it in the
backend; and broadcasts what changed on ``mesh.events.registry.<service>``:

- ``registered`` on every successful register (a re-register included);
- ``deregistered`` when a deregister removed something;
- ``status`` only when a status report changes the recorded status;
- ``expired`` once per instance whose lease ran out, from the sweep, which
  calls `backend.expire()` every `sweep_interval` seconds. Backends shared
  by several nodes (NATS KV, Redis) hand each expired instance to one
  caller only, so each ``expired`` event is sent once for the cluster.

Heartbeats change nothing others need to know, so they are not broadcast.
Only the register reply carries `lease_ttl` and `lease_expires_at`: a
backend does not say how long a renewed lease runs, and its owner knows.

Failures answer ``Reply(ok=False, code=...)``: ``invalid`` (the message
names the field), ``not_found`` (unknown instance: register again),
``forbidden`` (read-only backend such as Kubernetes, or a request that fails
the signature check below), ``unavailable`` (the backend failed; the node
keeps serving). A request that does not decode gets the bus's own "400"
error.

Signed requests. Given a `RegistrationSigner` (the registration key), the
node verifies every register, deregister, heartbeat and status report
before anything else and refuses, with ``forbidden``, those that are
unsigned, signed with another key, stale (``signed_at`` further than the
signer's `max_skew` from this node's clock) or replayed. A refused request
changes nothing and broadcasts nothing; it is logged as
``registry.request_refused`` with its `reason`. Queries stay open: reading
the registry hands nobody traffic.

Conventions beyond the message types: a register `ttl` of 0 means the
node's `default_ttl`; a query whose `service` is empty asks about every
service (`RegistryClient.get_services` relies on it).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import msgspec
import structlog

from meshgate.bus.errors import BusError
from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import (
    DeregisterRequest,
    HeartbeatRequest,
    QueryReply,
    QueryRequest,
    RegisterRequest,
    RegistryEvent,
    RegistryEventKind,
    Reply,
    StatusReport,
)
from meshgate.bus.protocol import MessageBus, Subscription
from meshgate.bus.signing import RegistrationSigner, SignatureError
from meshgate.discovery.backends.protocol import RegistryBackend
from meshgate.resilience.clock import Clock
from meshgate.resilience.validation import positive_number
from registry_node.query import select
from registry_node.validation import instance_problem, lease_problem, name_problem

QUEUE_GROUP = "registry"
"""Registry nodes share requests through this NATS queue group."""

log = structlog.get_logger("meshgate.registry")


def default_node_id() -> str:
    """``<hostname>-<pid>``: unique among the nodes of one cluster."""
    return f"{socket.gethostname()}-{os.getpid()}"


class RegistryService:
    """Serve the registry over `bus`, keeping registrations in `backend`.

    `default_ttl` is the lease of a register request that asks for 0;
    `max_ttl` the longest lease granted (longer ones are refused);
    `sweep_interval` how often, in seconds, leases are checked for expiry.
    `clock` stamps events (wall clock: the time means the same on every node)
    and, with a `signer`, is what a request's ``signed_at`` is checked against.
    `signer` makes the node refuse requests that are not signed with its key.

    >>> from meshgate.bus import InProcessBus
    >>> from meshgate.discovery.backends import MemoryRegistryBackend
    >>> async def main() -> None:
    ...     async with InProcessBus() as bus, anyio.create_task_group() as tg:
    ...         service = RegistryService(bus, MemoryRegistryBackend(), node_id="r-1")
    ...         await tg.start(service.run)  # serving from here on
    ...         tg.cancel_scope.cancel()
    >>> anyio.run(main)
    """

    def __init__(
        self,
        bus: MessageBus,
        backend: RegistryBackend,
        *,
        default_ttl: float = 30.0,
        max_ttl: float = 3600.0,
        sweep_interval: float = 0.5,
        node_id: str | None = None,
        clock: Clock = time.time,
        signer: RegistrationSigner | None = None,
    ) -> None:
        self._bus = bus
        self._backend = backend
        self._default_ttl = positive_number("default_ttl", default_ttl)
        self._max_ttl = positive_number("max_ttl", max_ttl)
        if self._default_ttl > self._max_ttl:
            raise ValueError(
                f"default_ttl={default_ttl!r} is not allowed: expected at most max_ttl={max_ttl!r}"
            )
        self._sweep_interval = positive_number("sweep_interval", sweep_interval)
        self._node_id = node_id or default_node_id()
        self._clock = clock
        self._signer = signer
        self._log = log.bind(node=self._node_id)

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def requires_signatures(self) -> bool:
        """Whether requests that change the registry must be signed."""
        return self._signer is not None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve requests and sweep leases until cancelled; `task_status`
        reports started once every request subject is served."""
        subjects = self._bus.subjects
        routes: list[tuple[str, type[Any], Callable[[Any], Awaitable[msgspec.Struct]]]] = [
            (subjects.registry_register, RegisterRequest, self.register),
            (subjects.registry_deregister, DeregisterRequest, self.deregister),
            (subjects.registry_heartbeat, HeartbeatRequest, self.heartbeat),
            (subjects.registry_status, StatusReport, self.report_status),
            (subjects.registry_query, QueryRequest, self.query),
        ]
        subscriptions: list[Subscription] = []
        try:
            for subject, request_type, handler in routes:
                subscriptions.append(
                    await self._bus.serve(subject, request_type, handler, queue=QUEUE_GROUP)
                )
            task_status.started()
            while True:
                await self.sweep()
                await anyio.sleep(self._sweep_interval)
        finally:
            with anyio.CancelScope(shield=True):
                for subscription in subscriptions:
                    await subscription.unsubscribe()

    # --- requests --------------------------------------------------------------

    async def register(self, request: RegisterRequest) -> Reply:
        instance = request.instance
        refusal = self._refusal("register", request, instance.name, instance.id)
        if refusal is not None:
            return refusal
        problem = instance_problem(instance) or lease_problem(
            request.ttl, default_ttl=self._default_ttl, max_ttl=self._max_ttl
        )
        if problem is not None:
            return _invalid(problem)
        ttl = request.ttl or self._default_ttl
        try:
            stored = await self._backend.register(instance, ttl=ttl)
        except Exception as exc:  # the backend's trouble must not end the node
            return self._failed("register", instance.name, instance.id, exc)
        self._log.info(
            "registry.instance_registered",
            service=stored.name,
            instance=stored.id,
            address=stored.address,
            ttl=ttl,
        )
        await self._broadcast("registered", stored)
        return Reply(
            ok=True, instance=stored, lease_ttl=ttl, lease_expires_at=stored.last_heartbeat + ttl
        )

    async def deregister(self, request: DeregisterRequest) -> Reply:
        refusal = self._refusal("deregister", request, request.service, request.instance_id)
        if refusal is not None:
            return refusal
        problem = _names_problem(request.service, request.instance_id)
        if problem is not None:
            return _invalid(problem)
        try:
            removed = await self._backend.deregister(request.service, request.instance_id)
        except Exception as exc:  # the backend's trouble must not end the node
            return self._failed("deregister", request.service, request.instance_id, exc)
        if removed is None:
            return _not_found(request.service, request.instance_id)
        self._log.info("registry.instance_deregistered", service=removed.name, instance=removed.id)
        await self._broadcast("deregistered", removed)
        return Reply(ok=True, instance=removed)

    async def heartbeat(self, request: HeartbeatRequest) -> Reply:
        refusal = self._refusal("heartbeat", request, request.service, request.instance_id)
        if refusal is not None:
            return refusal
        problem = _names_problem(request.service, request.instance_id)
        if problem is not None:
            return _invalid(problem)
        try:
            renewed = await self._backend.heartbeat(request.service, request.instance_id)
        except Exception as exc:  # the backend's trouble must not end the node
            return self._failed("heartbeat", request.service, request.instance_id, exc)
        if renewed is None:
            return _not_found(request.service, request.instance_id)
        self._log.debug("registry.heartbeat_received", service=renewed.name, instance=renewed.id)
        return Reply(ok=True, instance=renewed)

    async def report_status(self, request: StatusReport) -> Reply:
        """Record a health checker's verdict; broadcast it only if it changed."""
        refusal = self._refusal("status", request, request.service, request.instance_id)
        if refusal is not None:
            return refusal
        problem = _names_problem(request.service, request.instance_id)
        if problem is not None:
            return _invalid(problem)
        try:
            before = await self._find(request.service, request.instance_id)
            updated = (
                None
                if before is None
                else await self._backend.set_status(
                    request.service, request.instance_id, request.status
                )
            )
        except Exception as exc:  # the backend's trouble must not end the node
            return self._failed("status", request.service, request.instance_id, exc)
        if before is None or updated is None:
            return _not_found(request.service, request.instance_id)
        if updated.status != before.status:
            self._log.info(
                "registry.status_changed",
                service=updated.name,
                instance=updated.id,
                status=updated.status.value,
                previous=before.status.value,
                reason=request.reason,
            )
            await self._broadcast("status", updated)
        return Reply(ok=True, instance=updated)

    async def query(self, request: QueryRequest) -> QueryReply:
        """The instances of `request.service` (every service when it is
        empty) that match the request's filters."""
        try:
            if request.service:
                instances = await self._backend.get_instances(request.service)
            else:
                instances = []
                for service in await self._backend.get_services():
                    instances.extend(await self._backend.get_instances(service))
        except Exception as exc:  # the backend's trouble must not end the node
            self._log.warning(
                "registry.backend_failed", action="query", service=request.service, error=repr(exc)
            )
            return QueryReply(ok=False, error=f"backend failed: {type(exc).__name__}: {exc}")
        return QueryReply(instances=tuple(select(instances, request)))

    # --- leases ----------------------------------------------------------------

    async def sweep(self) -> list[ServiceInstance]:
        """Expire the leases that ran out and broadcast one ``expired`` event
        for each; returns them. A failing backend is logged and retried on
        the next sweep."""
        try:
            expired = await self._backend.expire()
        except Exception as exc:  # a backend outage must not stop the sweep loop
            self._log.warning("registry.sweep_failed", error=repr(exc))
            return []
        for instance in expired:
            self._log.info(
                "registry.instance_expired",
                service=instance.name,
                instance=instance.id,
                last_heartbeat=instance.last_heartbeat,
            )
            await self._broadcast("expired", instance)
        return expired

    # --- helpers ---------------------------------------------------------------

    def _refusal(
        self,
        action: str,
        request: RegisterRequest | DeregisterRequest | HeartbeatRequest | StatusReport,
        service: str,
        instance_id: str,
    ) -> Reply | None:
        """None when `request` may proceed; the ``forbidden`` reply otherwise."""
        if self._signer is None:
            return None
        try:
            self._signer.verify(request, now=float(self._clock()))
        except SignatureError as exc:
            # `service` and `instance_id` are the sender's claims, unchecked:
            # logged so an operator sees who was impersonated.
            self._log.warning(
                "registry.request_refused",
                action=action,
                reason=exc.reason,
                detail=exc.detail,
                service=service,
                instance=instance_id,
            )
            hint = (
                " (this registry requires requests signed with the registration key)"
                if exc.reason == "unsigned"
                else ""
            )
            return Reply(ok=False, code="forbidden", error=f"{action} refused: {exc}{hint}")
        return None

    async def _find(self, service: str, instance_id: str) -> ServiceInstance | None:
        for instance in await self._backend.get_instances(service):
            if instance.id == instance_id:
                return instance
        return None

    async def _broadcast(self, kind: RegistryEventKind, instance: ServiceInstance) -> None:
        event = RegistryEvent(kind=kind, instance=instance, at=float(self._clock()))
        try:
            await self._bus.publish(self._bus.subjects.registry_events(instance.name), event)
        except BusError as exc:
            # The change is stored; watchers catch up on their next refresh.
            self._log.warning(
                "registry.event_not_published",
                kind=kind,
                service=instance.name,
                instance=instance.id,
                error=repr(exc),
            )

    def _failed(self, action: str, service: str, instance_id: str, exc: Exception) -> Reply:
        if isinstance(exc, PermissionError):
            return Reply(ok=False, code="forbidden", error=f"{action} refused: {exc}")
        if isinstance(exc, ValueError):
            return _invalid(str(exc))
        self._log.warning(
            "registry.backend_failed",
            action=action,
            service=service,
            instance=instance_id,
            error=repr(exc),
        )
        return Reply(
            ok=False, code="unavailable", error=f"backend failed: {type(exc).__name__}: {exc}"
        )


def _names_problem(service: str, instance_id: str) -> str | None:
    return name_problem("service", service) or name_problem("instance_id", instance_id)


def _invalid(problem: str) -> Reply:
    return Reply(ok=False, code="invalid", error=problem)


def _not_found(service: str, instance_id: str) -> Reply:
    return Reply(
        ok=False, code="not_found", error=f"unknown instance {instance_id!r} of {service!r}"
    )
