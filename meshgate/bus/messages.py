"""Every payload that crosses the bus (DESIGN.md, "What crosses the bus").

Plain data only: the breaker, canary and lease logic that produce these live
elsewhere. Each message carries `v`, its schema version, so a receiver can
tell an old sender from a new one. Unknown fields are ignored on decode, so a
sender that adds an optional field does not break older receivers. Times
named ``at``, ``*_at`` or ``*_deadline`` are wall-clock epoch seconds
(`time.time()`), so that they mean the same on every node; durations are
seconds; latencies are milliseconds.

The registry's requests end with ``signed_at`` and ``signature``, set by
`meshgate.bus.signing.RegistrationSigner` when a registration key is
configured and None otherwise.

The four broadcast events are tagged (field ``type``) so one subscriber on
``mesh.events.>`` decodes any of them as `Event`:

>>> from meshgate.bus.codec import decode, encode
>>> event = ConfigEvent(kind="removed", route="/api/users/*", at=1700000000.0)
>>> decode(encode(event), Event) == event
True
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from meshgate.bus.instance import InstanceStatus, ServiceInstance

RegistryEventKind = Literal["registered", "deregistered", "expired", "status"]
CircuitStateName = Literal["closed", "open", "half-open", "forced-open", "disabled"]
"""The values of `meshgate.resilience.CircuitState`, which this package may not import."""
CanaryEventKind = Literal["step", "promote", "rollback", "pause", "resume", "weights"]
"""What a `CanaryEvent` reports: a decision of the canary leader, or
(``weights``) no change at all, only the current weights, which the leader
repeats every few seconds so that a replica that joined late, or missed an
event, learns them. A receiver older than ``weights`` drops those (logged as
``bus.message_dropped``) and keeps following the decisions."""
CanaryState = Literal["active", "paused", "promoted", "rolled-back"]
ConfigEventKind = Literal["added", "changed", "removed"]
ControlAction = Literal["pause", "resume", "promote", "rollback"]
ReplyCode = Literal["not_found", "invalid", "forbidden", "unavailable", "internal"]
"""Why a registry request failed, for code to act on: ``not_found`` on a
heartbeat means "register again"."""


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every payload: a frozen, keyword-only Struct with a schema version."""

    v: int = 1


# --- registry: request/reply on mesh.registry.* -------------------------------


class RegisterRequest(Message, frozen=True, kw_only=True):
    """Register (or replace) `instance` under a lease of `ttl` seconds.

    >>> inst = ServiceInstance(id="user-1", name="user-service", host="127.0.0.1", port=3001)
    >>> RegisterRequest(instance=inst, ttl=15.0).ttl
    15.0
    """

    instance: ServiceInstance
    ttl: float
    signed_at: float | None = None
    signature: str | None = None


class DeregisterRequest(Message, frozen=True, kw_only=True):
    """Remove one instance of `service`."""

    service: str
    instance_id: str
    signed_at: float | None = None
    signature: str | None = None


class HeartbeatRequest(Message, frozen=True, kw_only=True):
    """Renew an instance's lease."""

    service: str
    instance_id: str
    signed_at: float | None = None
    signature: str | None = None


class StatusReport(Message, frozen=True, kw_only=True):
    """The health checker's verdict on one instance.

    >>> StatusReport(service="user-service", instance_id="user-1",
    ...              status=InstanceStatus.DOWN, reason="GET /health: 503").status
    <InstanceStatus.DOWN: 'DOWN'>
    """

    service: str
    instance_id: str
    status: InstanceStatus
    reason: str | None = None
    signed_at: float | None = None
    signature: str | None = None


class Reply(Message, frozen=True, kw_only=True):
    """The answer to register, deregister, heartbeat and status requests.

    On success `instance` is what the registry now holds and the lease fields
    say when it runs out; on failure `error` says why for people and `code`
    for code.

    >>> Reply(ok=False, error="unknown instance user-1", code="not_found").code
    'not_found'
    """

    ok: bool
    error: str | None = None
    code: ReplyCode | None = None
    instance: ServiceInstance | None = None
    lease_ttl: float | None = None
    lease_expires_at: float | None = None


class QueryRequest(Message, frozen=True, kw_only=True):
    """Instances of `service` that match every filter given (None/empty: no filter).

    >>> QueryRequest(service="user-service", tags=("primary",), status=InstanceStatus.UP).zone
    """

    service: str
    zone: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str | int | float | bool] = {}
    status: InstanceStatus | None = None


class QueryReply(Message, frozen=True, kw_only=True):
    """The instances that matched a `QueryRequest`."""

    instances: tuple[ServiceInstance, ...] = ()
    ok: bool = True
    error: str | None = None


# --- broadcasts on mesh.events.* ----------------------------------------------


class RegistryEvent(Message, frozen=True, kw_only=True, tag_field="type", tag="registry"):
    """A change the registry made; for ``status``, `instance` carries the new status.

    >>> inst = ServiceInstance(id="user-1", name="user-service", host="127.0.0.1", port=3001)
    >>> RegistryEvent(kind="expired", instance=inst, at=1700000000.0).kind
    'expired'
    """

    kind: RegistryEventKind
    instance: ServiceInstance
    at: float


class CircuitEvent(Message, frozen=True, kw_only=True, tag_field="type", tag="circuit"):
    """A breaker transition on one replica, so the others can adopt it.

    `instance` is set when the breaker guards one instance rather than the
    whole route. `to_state`, `generation`, `reopens` and `reset_deadline`
    are the breaker's `BreakerSnapshot`, so a peer adopts it as is:
    `reset_deadline` is when an open circuit lets a probe through,
    `generation` orders transitions of the same breaker (a receiver ignores
    one older than what it holds), `reopens` carries the open-state backoff.

    >>> CircuitEvent(route="/api/users/*", from_state="closed", to_state="open",
    ...              replica="gw-1", reset_deadline=1700000030.0, generation=4,
    ...              at=1700000000.0).to_state
    'open'
    """

    route: str
    instance: str | None = None
    from_state: CircuitStateName
    to_state: CircuitStateName
    replica: str
    reset_deadline: float | None = None
    generation: int = 0
    reopens: int = 0
    at: float


class CanaryEvent(Message, frozen=True, kw_only=True, tag_field="type", tag="canary"):
    """A decision of the canary leader and the weights every gateway now uses.

    Weights are percentages (they sum to 100); `step` is the index in the
    rollout's `promotion.steps` of the last step reached (-1: none yet).
    `stats` holds what the decision was based on, per target, as the canary
    engine counts it (error rate in percent): ``{"canary": {"requests": 120,
    "errors": 3, "error_rate": 2.5, "p99_ms": 41.0}, "stable": {...}}``.

    >>> CanaryEvent(route="/api/orders", kind="step", state="active",
    ...             stable_version="1.0.0", canary_version="1.1.0",
    ...             stable_weight=75.0, canary_weight=25.0, step=2,
    ...             at=1700000000.0).canary_weight
    25.0
    """

    route: str
    kind: CanaryEventKind
    state: CanaryState
    stable_version: str
    canary_version: str
    stable_weight: float
    canary_weight: float
    step: int
    stats: dict[str, dict[str, float]] = {}
    reason: str | None = None
    at: float


class ConfigEvent(Message, frozen=True, kw_only=True, tag_field="type", tag="config"):
    """A route was added, changed or removed.

    `config` is the route's configuration as plain data (None on
    ``removed``); a gateway validates it with
    ``msgspec.convert(event.config, RouteConfig)``, which keeps this package
    free of routing and the payload independent of JSON or msgpack.
    """

    kind: ConfigEventKind
    route: str
    config: dict[str, Any] | None = None
    at: float


Event = RegistryEvent | CircuitEvent | CanaryEvent | ConfigEvent
"""Whatever is published under ``mesh.events.>``; decodes by its ``type`` tag."""


# --- gateway -> canary leader, and presence -----------------------------------


class VersionMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One version's traffic in one interval.

    `latency_buckets` is a sparse histogram: bucket upper bound in ms -> count,
    empty buckets omitted. Every replica uses the same bounds, so the leader
    merges reports by adding counts.

    >>> VersionMetrics(requests=3, errors=1, latency_sum_ms=61.0,
    ...                latency_buckets={10.0: 1, 25.0: 2}).requests
    3
    """

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    latency_buckets: dict[float, int] = {}


class MetricsReport(Message, frozen=True, kw_only=True):
    """What one gateway replica saw on one route in [interval_start, interval_end).

    `versions` is keyed by the version the requests were routed to
    (e.g. ``"1.0.0"``, ``"1.1.0"``).
    """

    route: str
    replica: str
    interval_start: float
    interval_end: float
    versions: dict[str, VersionMetrics] = {}


class Presence(Message, frozen=True, kw_only=True):
    """A gateway replica says it is alive (periodically) or going (`leaving`).

    `load` is its number of requests in flight when it sent this.

    >>> Presence(replica_id="gw-1", address="127.0.0.1:8080",
    ...          admin_address="127.0.0.1:9090", started_at=1700000000.0).leaving
    False
    """

    replica_id: str
    address: str
    admin_address: str | None = None
    started_at: float
    load: float = 0.0
    leaving: bool = False


class RateDemand(Message, frozen=True, kw_only=True):
    """How much traffic one replica's share of a route's rate limit met.

    `demand` is the requests the limit checked (admitted or not) in the last
    `interval` seconds, expressed per `window` of the limit, so that it reads
    in the limit's own unit: a replica seeing 30 requests a second on a limit
    of 100 per minute reports 1800.

    >>> RateDemand(route="/api/orders", replica="gw-1", demand=1800.0, window=60.0,
    ...            interval=0.5, at=1700000000.0).demand
    1800.0
    """

    route: str
    replica: str
    demand: float
    window: float
    interval: float
    at: float


# --- circuit state on request: mesh.control.circuits ------------------------------


class CircuitStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One route's breaker as a replica holds it (the fields of its snapshot)."""

    route: str
    state: CircuitStateName
    generation: int = 0
    reopens: int = 0
    reset_deadline: float | None = None


class CircuitStatusRequest(Message, frozen=True, kw_only=True):
    """A starting replica asks a peer for every circuit's state."""

    replica: str


class CircuitStatusReply(Message, frozen=True, kw_only=True):
    """A peer's circuits, each as its breaker's snapshot.

    >>> CircuitStatusReply(replica="gw-2", circuits=(
    ...     CircuitStatus(route="payment", state="open", generation=3,
    ...                   reset_deadline=1700000030.0),)).circuits[0].state
    'open'
    """

    replica: str
    circuits: tuple[CircuitStatus, ...] = ()


# --- canary control: request/reply on mesh.control.canary.<route> --------------


class ControlRequest(Message, frozen=True, kw_only=True):
    """An operator's order to the canary leader.

    >>> ControlRequest(route="/api/orders", action="rollback").action
    'rollback'
    """

    route: str
    action: ControlAction


class ControlReply(Message, frozen=True, kw_only=True):
    """The leader's answer, with the rollout as it stands after the action.

    On failure `error` says why for people and `code` for code: ``not_found``
    (the route has no canary), ``invalid`` (the rollout is finished and
    cannot take the action), ``unavailable`` (the controller stopped leading
    meanwhile: ask again). `changed` is False when the rollout already was
    where the action leads (pausing a paused rollout).

    >>> ControlReply(ok=True, changed=False, state="paused", stable_weight=75.0,
    ...              canary_weight=25.0, step=1).changed
    False
    """

    ok: bool
    error: str | None = None
    code: ReplyCode | None = None
    changed: bool | None = None
    state: CanaryState | None = None
    stable_weight: float | None = None
    canary_weight: float | None = None
    step: int | None = None
