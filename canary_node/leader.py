"""`CanaryLeader`: what the canary controller does while it holds the lease.

At the start of a term it builds fresh engines (`Rollouts`) from the
gateway config and restores each from its KV snapshot, so it resumes at the
persisted step; a route without a snapshot (or with one of another
rollout) starts from the config and is persisted at once, which makes its
start time durable too. Then, until the term ends:

- it sums every replica's `MetricsReport` (``mesh.metrics.*``) and, every
  `interval`, feeds each route's engine and calls `evaluate()`;
- it answers ``mesh.control.canary.*`` (promote, rollback, pause, resume),
  as the only subscriber: standbys do not subscribe, so with no leader a
  request finds no responders at once;
- after every change it persists the route's snapshot, then broadcasts the
  change's `CanaryEvent` on ``mesh.events.canary.<route>``; a snapshot that
  cannot be saved yet holds its events back (and is retried every tick), so
  replicas never follow a weight a successor could not restore;
- every `weights_every` it broadcasts each rollout's current weights
  (``kind="weights"``), for replicas that joined late or missed an event.

All changes to the engines, their snapshots and broadcasts happen under one
lock, in the order they were made. A write to the bucket needs
`Term.is_held()`; a snapshot write that meets another controller's
revision ends the term (`RolloutStore` fences a deposed leader out).
"""

from __future__ import annotations

import time

import anyio
import msgspec
import structlog

from canary_node.canary_broadcasts import event_message, weights_message
from canary_node.election import Term
from canary_node.metrics_inbox import DEFAULT_MAX_AGE, MetricsInbox
from canary_node.rollout_store import RolloutConflictError, RolloutStore
from canary_node.rollouts import Rollouts
from meshgate.bus.connection import Bus
from meshgate.bus.errors import BusError
from meshgate.bus.messages import ControlReply, ControlRequest, MetricsReport
from meshgate.bus.protocol import Subscription
from meshgate.gateway.canary_status import CanaryEventInfo
from meshgate.gateway.config import GatewayConfig
from meshgate.resilience.clock import Clock

log = structlog.get_logger("meshgate.canary")

CONTROL_QUEUE = "canary-leader"
WEIGHTS_INTERVAL = 2.0
"""Seconds between two broadcasts of the current weights."""


class _NotLeadingError(Exception):
    """The term is over: this node may not write or broadcast any more."""


class CanaryLeader:
    """Leads the rollouts of `config`'s canary routes, one term at a time:
    pass `lead` to `canary_node.election.campaign`.

    >>> async def run(bus: Bus, config: GatewayConfig, bucket) -> None:
    ...     from canary_node.election import campaign
    ...     leader = CanaryLeader(bus, config, bucket="MESH_CANARY")
    ...     await campaign(bucket, leader.lead)
    """

    def __init__(
        self,
        bus: Bus,
        config: GatewayConfig,
        *,
        bucket: str,
        interval: float = 1.0,
        weights_every: float = WEIGHTS_INTERVAL,
        max_report_age: float = DEFAULT_MAX_AGE,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self._bus = bus
        self._config = config
        self._bucket = bucket
        self._interval = interval
        self._weights_every = weights_every
        self._max_report_age = max_report_age
        self._clock = clock
        self._wall_clock = wall_clock

    async def lead(self, term: Term) -> None:
        """Run one term until cancelled (or until it must resign)."""
        rollouts = Rollouts.from_config(self._config, clock=self._clock)
        session = _TermSession(
            self._bus,
            term,
            rollouts,
            RolloutStore(self._bus, self._bucket),
            MetricsInbox(rollouts.routes, max_age=self._max_report_age),
            wall_clock=self._wall_clock,
        )
        await session.run(interval=self._interval, weights_every=self._weights_every)


class _TermSession:
    """One term's state: engines, store revisions, the inbox, and the
    changes not yet persisted and broadcast."""

    def __init__(
        self,
        bus: Bus,
        term: Term,
        rollouts: Rollouts,
        store: RolloutStore,
        inbox: MetricsInbox,
        *,
        wall_clock: Clock,
    ) -> None:
        self._bus = bus
        self._term = term
        self._rollouts = rollouts
        self._store = store
        self._inbox = inbox
        self._wall_clock = wall_clock
        self._lock = anyio.Lock()
        # routes whose snapshot is not saved yet (a dict: ordered, as changes were made)
        self._unsaved: dict[str, None] = {}
        # per route, the events waiting for its snapshot to be saved
        self._held_back: dict[str, list[CanaryEventInfo]] = {}

    async def run(self, *, interval: float, weights_every: float) -> None:
        await self._restore()
        subscriptions: list[Subscription] = []
        try:
            subjects = self._bus.subjects
            subscriptions.append(
                await self._bus.subscribe(subjects.all_metrics, MetricsReport, self._on_metrics)
            )
            subscriptions.append(
                await self._bus.serve(
                    subjects.all_canary_control,
                    ControlRequest,
                    self._on_control,
                    queue=CONTROL_QUEUE,
                )
            )
            log.info("canary.leader_ready", term=self._term.id, routes=list(self._rollouts.routes))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._evaluate_every, interval)
                tg.start_soon(self._broadcast_weights_every, weights_every)
                await self._term.wait_ended()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                for subscription in subscriptions:
                    await subscription.unsubscribe()

    # -- start of term ----------------------------------------------------------

    async def _restore(self) -> None:
        """Load and restore every rollout, retrying while the bucket is out of
        reach: leading from a state that might not be the latest could repeat
        a step."""
        while True:
            try:
                await self._store.open()
                for route in self._rollouts.routes:
                    await self._restore_route(route)
                break
            except BusError as exc:
                log.warning("canary.restore_failed", term=self._term.id, error=str(exc))
                await anyio.sleep(1.0)
        async with self._lock:
            try:
                await self._save_and_broadcast()
            except _NotLeadingError:
                return

    async def _restore_route(self, route: str) -> None:
        snapshot = await self._store.load(route)
        if snapshot is None:
            log.info("canary.rollout_started", route=route)
            self._unsaved[route] = None
            return
        try:
            self._rollouts.restore(snapshot, wall_now=self._wall_clock())
        except ValueError as exc:
            # The config now names another rollout for this route: start it.
            log.warning("canary.snapshot_replaced", route=route, reason=str(exc))
            self._unsaved[route] = None
            return
        log.info(
            "canary.rollout_restored",
            route=route,
            state=snapshot.state,
            canary_weight=snapshot.canary_weight,
            step=snapshot.step,
        )

    # -- the loops ----------------------------------------------------------------

    async def _evaluate_every(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            async with self._lock:
                for route, traffic in self._inbox.drain().items():
                    self._rollouts.record(route, traffic.versions)
                self._rollouts.evaluate()
                self._collect_changes()
                try:
                    await self._save_and_broadcast()
                except _NotLeadingError:
                    return

    async def _broadcast_weights_every(self, every: float) -> None:
        while True:
            async with self._lock:
                at = self._wall_clock()
                for route in self._rollouts.routes:
                    if route not in self._unsaved and self._term.is_held():
                        message = weights_message(self._rollouts.status(route), at=at)
                        await self._publish(route, message)
            await anyio.sleep(every)

    # -- bus handlers -------------------------------------------------------------

    async def _on_metrics(self, report: MetricsReport) -> None:
        self._inbox.add(report, wall_now=self._wall_clock())

    async def _on_control(self, request: ControlRequest) -> ControlReply:
        async with self._lock:
            if not self._term.is_held():
                return _not_leading()
            reply = self._rollouts.control(request.route, request.action)
            self._collect_changes()
            try:
                await self._save_and_broadcast()
            except _NotLeadingError:
                return _not_leading()
            if request.route in self._unsaved:
                reply = msgspec.structs.replace(
                    reply,
                    ok=False,
                    code="unavailable",
                    error="done, but the rollout's state could not be saved yet; "
                    "the controller keeps trying",
                )
        log.info(
            "canary.control_answered",
            route=request.route,
            action=request.action,
            ok=reply.ok,
            changed=reply.changed,
            state=reply.state,
            error=reply.error,
        )
        return reply

    # -- persistence and broadcasts ---------------------------------------------

    def _collect_changes(self) -> None:
        for info in self._rollouts.take_changes():
            self._held_back.setdefault(info.route, []).append(info)
            self._unsaved[info.route] = None

    async def _save_and_broadcast(self) -> None:
        """Save each changed route's snapshot, then broadcast its events;
        `_NotLeadingError` once the term is over."""
        for route in list(self._unsaved):
            if not self._term.is_held():
                raise _NotLeadingError
            snapshot = self._rollouts.snapshot(route, wall_now=self._wall_clock())
            try:
                await self._store.save(snapshot)
            except RolloutConflictError as exc:
                self._term.resign(str(exc))
                raise _NotLeadingError from exc
            except BusError as exc:
                log.warning("canary.snapshot_not_saved", route=route, error=str(exc))
                continue
            del self._unsaved[route]
            at = self._wall_clock()
            for info in self._held_back.pop(route, []):
                await self._publish(route, event_message(info, at=at))
                log.info(
                    "canary.broadcast",
                    route=route,
                    kind=info.event,
                    state=info.state,
                    canary_weight=info.canary_weight,
                    step=info.step,
                    reason=info.reason,
                )

    async def _publish(self, route: str, message: msgspec.Struct) -> None:
        try:
            await self._bus.publish(self._bus.subjects.canary_events(route), message)
        except BusError as exc:
            # The next weights broadcast brings the replicas up to date.
            log.warning("canary.broadcast_failed", route=route, error=str(exc))


def _not_leading() -> ControlReply:
    return ControlReply(
        ok=False,
        code="unavailable",
        error="this controller stopped leading while answering; ask again",
    )


__all__ = ["CONTROL_QUEUE", "WEIGHTS_INTERVAL", "CanaryLeader"]
