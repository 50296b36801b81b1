"""The `CanaryEvent`s the leader broadcasts on ``mesh.events.canary.<route>``:
one per engine event (step, promote, rollback, pause, resume), and a
``weights`` event per route every few seconds that changes nothing and
tells a replica that joined late (or missed an event) where the rollout is.

>>> from meshgate.gateway.canary_status import CanaryStats, TargetStats
>>> quiet = TargetStats(requests=0, errors=0, error_rate=0.0, p99_ms=0.0)
>>> info = CanaryEventInfo(event="canary:step", route="orders", state="active",
...                        stable_version="1.0.0", canary_version="2.0.0",
...                        canary_weight=25.0, stable_weight=75.0, step=1,
...                        reason="healthy", stats=CanaryStats(stable=quiet, canary=quiet))
>>> message = event_message(info, at=1_700_000_000.0)
>>> message.kind, message.canary_weight, message.stats["canary"]["requests"]
('step', 25.0, 0.0)
"""

from __future__ import annotations

from meshgate.bus.messages import CanaryEvent, CanaryEventKind
from meshgate.gateway.canary_status import (
    CanaryEventInfo,
    CanaryEventName,
    CanaryStats,
    CanaryStatus,
)

_KINDS: dict[CanaryEventName, CanaryEventKind] = {
    "canary:step": "step",
    "canary:promote": "promote",
    "canary:rollback": "rollback",
    "canary:pause": "pause",
    "canary:resume": "resume",
}


def stats_payload(stats: CanaryStats) -> dict[str, dict[str, float]]:
    """`stats` as `CanaryEvent.stats` carries them (numbers only)."""
    return {
        target: {
            "requests": float(numbers.requests),
            "errors": float(numbers.errors),
            "error_rate": numbers.error_rate,
            "p99_ms": numbers.p99_ms,
        }
        for target, numbers in (("stable", stats.stable), ("canary", stats.canary))
    }


def event_message(info: CanaryEventInfo, *, at: float) -> CanaryEvent:
    """The broadcast of one engine event, stamped `at` (epoch seconds)."""
    return CanaryEvent(
        route=info.route,
        kind=_KINDS[info.event],
        state=info.state,
        stable_version=info.stable_version,
        canary_version=info.canary_version,
        stable_weight=info.stable_weight,
        canary_weight=info.canary_weight,
        step=info.step,
        stats=stats_payload(info.stats),
        reason=info.reason,
        at=at,
    )


def weights_message(status: CanaryStatus, *, at: float) -> CanaryEvent:
    """The periodic reminder of where `status`'s rollout stands.

    >>> from meshgate.gateway.canary_status import CanaryStats, TargetStats
    >>> quiet = TargetStats(requests=0, errors=0, error_rate=0.0, p99_ms=0.0)
    >>> status = CanaryStatus(route="orders", state="paused", canary_weight=50.0,
    ...                       stable_weight=50.0, current_step=2, stable_version="1.0.0",
    ...                       canary_version="2.0.0", last_decision=None, last_reason=None,
    ...                       last_step_at=0.0, stats=CanaryStats(stable=quiet, canary=quiet))
    >>> message = weights_message(status, at=1_700_000_000.0)
    >>> message.kind, message.state, message.step
    ('weights', 'paused', 2)
    """
    return CanaryEvent(
        route=status.route,
        kind="weights",
        state=status.state,
        stable_version=status.stable_version,
        canary_version=status.canary_version,
        stable_weight=status.stable_weight,
        canary_weight=status.canary_weight,
        step=status.current_step,
        stats=stats_payload(status.stats),
        reason=status.last_reason,
        at=at,
    )


__all__ = ["event_message", "stats_payload", "weights_message"]
