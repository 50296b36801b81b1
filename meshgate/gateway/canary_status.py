"""What a `CanaryEngine` tells the world: its status, its events, and the
snapshot a standby controller resumes from. Frozen msgspec Structs, so they
can be shared between tasks and encoded as they are.

>>> stats = CanaryStats(stable=TargetStats(requests=900, errors=9, error_rate=1.0, p99_ms=40.0),
...                     canary=TargetStats(requests=100, errors=1, error_rate=1.0, p99_ms=42.0))
>>> msgspec.json.encode(stats.canary)
b'{"requests":100,"errors":1,"error_rate":1.0,"p99_ms":42.0}'
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

from meshgate.gateway.canary_stats import Decision

RolloutState = Literal["active", "paused", "promoted", "rolled-back"]
"""Where a rollout is; the same names as `meshgate.bus.messages.CanaryState`."""

TERMINAL_STATES: frozenset[RolloutState] = frozenset({"promoted", "rolled-back"})

CanaryEventName = Literal[
    "canary:step", "canary:promote", "canary:rollback", "canary:pause", "canary:resume"
]
CANARY_EVENTS: tuple[CanaryEventName, ...] = get_args(CanaryEventName)


class TargetStats(msgspec.Struct, frozen=True, kw_only=True):
    """One target's traffic in the evaluation window; `error_rate` in percent,
    `p99_ms` the nearest-rank p99 (0.0 without requests)."""

    requests: int
    errors: int
    error_rate: float
    p99_ms: float


class CanaryStats(msgspec.Struct, frozen=True, kw_only=True):
    """Both targets' traffic in the evaluation window."""

    stable: TargetStats
    canary: TargetStats


class CanaryStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A rollout as it stands.

    `current_step` is the index in `promotion.steps` of the last step reached
    (-1 before the first); a rollback keeps it, so it says where the canary
    was stopped. `last_step_at` is the engine clock's time of the last
    weight change (or of the engine's start). `last_decision` and
    `last_reason` come from the last `evaluate()` that judged (None before
    the first).
    """

    route: str
    state: RolloutState
    canary_weight: float
    stable_weight: float
    current_step: int
    stable_version: str
    canary_version: str
    last_decision: Decision | None
    last_reason: str | None
    last_step_at: float
    stats: CanaryStats


class CanaryEventInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What an event handler is given: the rollout just after the event, why
    it happened, and the window's statistics the decision was based on."""

    event: CanaryEventName
    route: str
    state: RolloutState
    stable_version: str
    canary_version: str
    canary_weight: float
    stable_weight: float
    step: int
    reason: str
    stats: CanaryStats


class CanarySnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A rollout's durable state, which a standby controller restores.

    `last_step_wall_at` is wall-clock epoch seconds: the engine's clock is
    monotonic and means nothing in another process, so the caller passes
    wall times to `export_state` and `restore`, and the standby's next step
    comes `step_interval` after the old leader's last one.

    >>> snapshot = CanarySnapshot(route="/api/orders", stable_version="1.0.0",
    ...                           canary_version="2.0.0", state="active",
    ...                           canary_weight=25.0, step=1,
    ...                           last_step_wall_at=1_700_000_000.0)
    >>> msgspec.json.decode(msgspec.json.encode(snapshot), type=CanarySnapshot) == snapshot
    True
    """

    v: int = 1
    route: str
    stable_version: str
    canary_version: str
    state: RolloutState
    canary_weight: float
    step: int
    last_step_wall_at: float
    last_decision: Decision | None = None
    last_reason: str | None = None


__all__ = [
    "CANARY_EVENTS",
    "TERMINAL_STATES",
    "CanaryEventInfo",
    "CanaryEventName",
    "CanarySnapshot",
    "CanaryStats",
    "CanaryStatus",
    "RolloutState",
    "TargetStats",
]
