"""`HealthChecker`: actively probes every registered instance and reports
status changes to the registry (the process behind `meshgate health`).

Which instances. The registry has no "list every service" query, so the
checker learns instances two ways: it follows the registry's broadcasts
(``registered`` / ``status`` add or update an instance, ``deregistered`` /
``expired`` drop it), and every `rescan_interval` seconds it queries the
registry for each service it knows of — those named in `services` and those
seen in any event. Limitation: an instance of a service that is not in
`services` and registered before the checker started is found only once its
service emits an event (a registration, expiry or status change of any of
its instances). Name your services to have them found at once.

The rescan also drops instances the registry no longer lists (an event
missed while NATS reconnected) and adopts statuses set elsewhere.

Probing. Each instance has its own loop in the checker's task group: GET
``http://host:port{health_check_path}`` every `health_check_interval`
seconds, bounded by `timeout`; any 2xx is healthy. Loops are independent, so
an instance that hangs costs its own loop `timeout` seconds and nobody
else's. A `HealthVerdict` per instance turns results into transitions; each
transition is logged (``health.status_changed``) and sent to the registry as
a `StatusReport`. A report that fails (registry down, timeout) is sent again
after the next probe until the registry accepts it. Instances an operator
set OUT_OF_SERVICE are not probed: reporting them UP would undo the
operator's decision.

Signing. A registry that holds a registration key refuses unsigned status
reports; give the checker the same key (`signer`) and it signs each one.
A refused report is logged (``health.report_rejected``, code ``forbidden``)
and sent again after the next probe, like any other failed report.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import anyio
import anyio.abc
import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from meshgate.bus.errors import BusError
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    QueryReply,
    QueryRequest,
    RegistryEvent,
    Reply,
    StatusReport,
)
from meshgate.bus.protocol import MessageBus, Subscription
from meshgate.bus.signing import RegistrationSigner
from meshgate.resilience.clock import Clock
from registry_node.health_verdict import HealthVerdict

InstanceKey = tuple[str, str]
"""(service, instance id): how the registry names an instance."""

# What ServiceInstance itself defaults to; used when an instance carries an
# interval that no loop could keep (zero, negative, NaN, infinite).
_FALLBACK_INTERVAL = 30.0
# The registry answers from memory or one KV operation; this bounds how long
# one report holds up its instance's loop, and one query the rescan.
_REGISTRY_TIMEOUT = 2.0
# Statuses that the checker decides and therefore reports.
_DECISIVE = frozenset({InstanceStatus.UP, InstanceStatus.DOWN})


@dataclass(eq=False)
class _Target:
    """One watched instance: what it is, what its probes say, what the
    registry was last told, and the scope that ends its loop."""

    instance: ServiceInstance
    verdict: HealthVerdict
    reported: InstanceStatus
    generation: int
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class HealthChecker:
    """Probe every instance the registry knows and report status changes.

    `run` works until cancelled; `run` under a task group's ``start`` returns
    once the checker listens to the registry and has asked it about
    `services` once.

    >>> from meshgate.bus import InProcessBus
    >>> async def check_for(seconds: float, bus: InProcessBus) -> None:
    ...     checker = HealthChecker(bus, services=("user-service",), timeout=1.0)
    ...     async with anyio.create_task_group() as tg:
    ...         await tg.start(checker.run)
    ...         await anyio.sleep(seconds)
    ...         tg.cancel_scope.cancel()

    `http` lets the caller share (and configure) the client; otherwise the
    checker opens its own for the duration of `run`. `default_interval`,
    when set, replaces every instance's own `health_check_interval`.
    `signer` signs each status report, stamped with `clock` (wall clock,
    epoch seconds: the registry checks the stamp against its own).
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 2.0,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 2,
        rescan_interval: float = 5.0,
        default_interval: float | None = None,
        services: Iterable[str] = (),
        log: FilteringBoundLogger | None = None,
        signer: RegistrationSigner | None = None,
        clock: Clock = time.time,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout={timeout!r}: must be a positive number of seconds")
        if not rescan_interval > 0:
            raise ValueError(f"rescan_interval={rescan_interval!r}: must be positive")
        if default_interval is not None and not default_interval > 0:
            raise ValueError(f"default_interval={default_interval!r}: must be positive")
        # Fail here, not at the first probe, when a threshold is nonsense.
        HealthVerdict(unhealthy_threshold, healthy_threshold)
        self._bus = bus
        self._http = http
        self._timeout = timeout
        self._unhealthy_threshold = unhealthy_threshold
        self._healthy_threshold = healthy_threshold
        self._rescan_interval = rescan_interval
        self._default_interval = default_interval
        self._services: set[str] = set(services)
        self._signer = signer
        self._clock = clock
        self._log: FilteringBoundLogger = log or structlog.get_logger("meshgate.health")
        self._targets: dict[InstanceKey, _Target] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._client: httpx.AsyncClient | None = None
        # Orders additions against rescans, so that a query answered before
        # an instance registered does not drop that instance.
        self._generation = 0

    @property
    def watched(self) -> frozenset[InstanceKey]:
        """The instances being probed now, as (service, instance id)."""
        return frozenset(self._targets)

    @property
    def services(self) -> frozenset[str]:
        """The services the rescan asks the registry about."""
        return frozenset(self._services)

    def status_of(self, service: str, instance_id: str) -> InstanceStatus | None:
        """The probes' verdict on one instance; None if it is not watched."""
        target = self._targets.get((service, instance_id))
        return None if target is None else target.verdict.status

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the registry and probe its instances until cancelled."""
        if self._task_group is not None:
            raise RuntimeError("HealthChecker.run is already running")
        async with _http_client(self._http, self._timeout) as client:
            self._client = client
            subscription: Subscription | None = None
            try:
                async with anyio.create_task_group() as tg:
                    self._task_group = tg
                    subscription = await self._bus.subscribe(
                        self._bus.subjects.all_registry_events, RegistryEvent, self._on_event
                    )
                    self._log.info(
                        "health.started",
                        services=sorted(self._services),
                        timeout=self._timeout,
                        unhealthy_threshold=self._unhealthy_threshold,
                        healthy_threshold=self._healthy_threshold,
                        signs_reports=self._signer is not None,
                    )
                    await self._rescan()
                    task_status.started()
                    tg.start_soon(self._rescan_forever)
            finally:
                self._task_group = None
                self._client = None
                self._targets.clear()
                if subscription is not None:
                    with anyio.CancelScope(shield=True):
                        await subscription.unsubscribe()

    # --- learning instances ---------------------------------------------------

    async def _on_event(self, event: RegistryEvent) -> None:
        instance = event.instance
        self._services.add(instance.name)
        if event.kind == "registered":
            # A (re-)registration is a new start: old streaks say nothing
            # about the process that registered now.
            self._forget(instance.name, instance.id, reason="registered again")
            self._watch(instance)
        elif event.kind == "status":
            self._update(instance)
        else:
            self._forget(instance.name, instance.id, reason=event.kind)

    async def _rescan_forever(self) -> None:
        while True:
            await anyio.sleep(self._rescan_interval)
            await self._rescan()

    async def _rescan(self) -> None:
        for service in sorted(self._services):
            generation = self._generation
            try:
                reply = await self._bus.request(
                    self._bus.subjects.registry_query,
                    QueryRequest(service=service),
                    QueryReply,
                    timeout=_REGISTRY_TIMEOUT,
                )
            except BusError as exc:
                self._log.warning("health.rescan_failed", service=service, error=str(exc))
                continue
            if not reply.ok:
                self._log.warning("health.rescan_failed", service=service, error=reply.error)
                continue
            listed = {instance.id for instance in reply.instances}
            for instance in reply.instances:
                self._update(instance)
            for key, target in list(self._targets.items()):
                if key[0] == service and key[1] not in listed and target.generation <= generation:
                    self._forget(*key, reason="not listed by the registry")

    def _update(self, instance: ServiceInstance) -> None:
        """Watch `instance`, or bring a watched one up to date with the registry."""
        target = self._targets.get((instance.name, instance.id))
        if target is None:
            self._watch(instance)
            return
        if instance.status == InstanceStatus.OUT_OF_SERVICE:
            self._forget(instance.name, instance.id, reason="out of service")
            return
        # The loop reads `target.instance` before each probe, so a new
        # address or interval applies from the next probe on.
        target.instance = instance
        target.reported = instance.status
        target.verdict.adopt(instance.status)

    def _watch(self, instance: ServiceInstance) -> None:
        tg, client = self._task_group, self._client
        if tg is None or client is None or instance.status == InstanceStatus.OUT_OF_SERVICE:
            return
        self._generation += 1
        target = _Target(
            instance=instance,
            verdict=HealthVerdict(
                self._unhealthy_threshold, self._healthy_threshold, status=instance.status
            ),
            reported=instance.status,
            generation=self._generation,
        )
        self._targets[(instance.name, instance.id)] = target
        self._log.info(
            "health.instance_watched",
            service=instance.name,
            instance_id=instance.id,
            address=instance.address,
            status=instance.status.value,
        )
        tg.start_soon(self._probe_forever, target, client)

    def _forget(self, service: str, instance_id: str, *, reason: str) -> None:
        target = self._targets.pop((service, instance_id), None)
        if target is None:
            return
        # The scope exists before its task runs, so this also stops a loop
        # that has not started yet.
        target.scope.cancel()
        self._log.info(
            "health.instance_forgotten", service=service, instance_id=instance_id, reason=reason
        )

    # --- probing ----------------------------------------------------------------

    async def _probe_forever(self, target: _Target, client: httpx.AsyncClient) -> None:
        with target.scope:
            while True:
                started = anyio.current_time()
                instance = target.instance
                ok, reason = await self._probe(client, instance)
                change = target.verdict.on_probe(ok)
                if change is not None:
                    self._log.info(
                        "health.status_changed",
                        service=instance.name,
                        instance_id=instance.id,
                        address=instance.address,
                        status=change.value,
                        reason=reason,
                    )
                status = target.verdict.status
                if status in _DECISIVE and status != target.reported:
                    await self._report(target, status, reason)
                # Keep the cadence from probe start to probe start, so a slow
                # answer does not stretch the interval.
                next_probe = started + self._interval_of(target.instance)
                await anyio.sleep(max(0.0, next_probe - anyio.current_time()))

    async def _probe(
        self, client: httpx.AsyncClient, instance: ServiceInstance
    ) -> tuple[bool, str]:
        """(healthy?, what happened) for one GET of the instance's health path."""
        path = instance.health_check_path
        if not path.startswith("/"):
            path = "/" + path
        host = f"[{instance.host}]" if ":" in instance.host else instance.host
        url = f"http://{host}:{instance.port}{path}"
        # httpx's timeout bounds each phase (connect, each read), so a server
        # that drips bytes could outlast it; the cancel scope bounds the whole.
        timed_out = f"GET {path}: no answer within {self._timeout:g}s"
        with anyio.move_on_after(self._timeout):
            try:
                response = await client.get(url)
            except httpx.TimeoutException:
                return False, timed_out
            # httpx.HTTPError mostly, but a host the URL parser rejects raises
            # InvalidURL, and no instance's data may end the checker.
            except Exception as exc:
                return False, f"GET {path}: {type(exc).__name__}"
            return response.is_success, f"GET {path}: {response.status_code}"
        return False, timed_out

    async def _report(self, target: _Target, status: InstanceStatus, reason: str) -> None:
        instance = target.instance
        report = StatusReport(
            service=instance.name, instance_id=instance.id, status=status, reason=reason
        )
        if self._signer is not None:
            report = self._signer.sign(report, now=self._clock())
        try:
            reply = await self._bus.request(
                self._bus.subjects.registry_status, report, Reply, timeout=_REGISTRY_TIMEOUT
            )
        except BusError as exc:
            self._log.warning(
                "health.report_failed",
                service=instance.name,
                instance_id=instance.id,
                status=status.value,
                error=str(exc),
            )
            return
        if reply.ok:
            target.reported = status
        elif reply.code == "not_found":
            # The registry dropped it (expired) and we missed the event.
            self._forget(instance.name, instance.id, reason="unknown to the registry")
        else:
            self._log.warning(
                "health.report_rejected",
                service=instance.name,
                instance_id=instance.id,
                status=status.value,
                error=reply.error,
                code=reply.code,
            )

    def _interval_of(self, instance: ServiceInstance) -> float:
        interval = self._default_interval or instance.health_check_interval
        return interval if interval > 0 and math.isfinite(interval) else _FALLBACK_INTERVAL


@contextlib.asynccontextmanager
async def _http_client(
    given: httpx.AsyncClient | None, probe_timeout: float
) -> AsyncIterator[httpx.AsyncClient]:
    """The caller's client as is, or one of our own, closed on exit."""
    if given is not None:
        yield given
        return
    async with httpx.AsyncClient(
        timeout=probe_timeout,
        # Every instance probes at once on start; a pool limit would make
        # probes queue behind each other (and behind a hanging instance).
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        # Health paths answer directly; a redirect or a proxy from the
        # environment would test something other than the instance.
        follow_redirects=False,
        trust_env=False,
    ) as client:
        yield client
