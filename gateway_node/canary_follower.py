"""A replica follows the canary controller: each `CanaryEvent` on
``mesh.events.canary.*`` sets the weights, state and step of that route's
`CanaryEngine` here (`CanaryEngine.apply_weights`), so every replica routes
with the cluster's weights. A change is told to the gateway's own event
handlers (`gateway.on("canary:promote", ...)`) and logged, as if the
replica's engine had made it.

The replica never judges in this mode: with no controller running, its
engines stay at the configured weights (unless the gateway was put in
embedded mode with `GatewayServer.start_canaries()`). An event for a
rollout the replica is not configured with — another version pair, after
a config change that has not reached every process yet — is ignored and
logged once.
"""

from __future__ import annotations

from typing import Any

import anyio
import structlog

from meshgate.bus.messages import CanaryEvent
from meshgate.bus.protocol import MessageBus
from meshgate.gateway.canary_engine import CanaryEngine
from meshgate.gateway.canary_status import CanaryEventName
from meshgate.gateway.server import GatewayServer

log = structlog.get_logger("meshgate.gateway")


class ForeignRolloutError(ValueError):
    """The event is about another rollout than the one the engine runs."""


def follow(engine: CanaryEngine, event: CanaryEvent) -> CanaryEventName | None:
    """Apply `event`'s position to `engine`; the event the change amounts to,
    or None when the engine already stood there. Raises `ForeignRolloutError`
    when the versions differ, `ValueError` for a position that does not fit
    the engine's steps.

    >>> engine = CanaryEngine({"stable": {"version": "1"}, "canary": {"version": "2",
    ...                        "weight": 10}}, route="orders")
    >>> event = CanaryEvent(route="orders", kind="step", state="active", stable_version="1",
    ...                     canary_version="2", stable_weight=75.0, canary_weight=25.0,
    ...                     step=1, at=0.0)
    >>> follow(engine, event), follow(engine, event), engine.canary_weight
    ('canary:step', None, 25.0)
    """
    config = engine.config
    if (event.stable_version, event.canary_version) != (
        config.stable.version,
        config.canary.version,
    ):
        raise ForeignRolloutError(
            f"event for {event.stable_version} -> {event.canary_version}, but this replica "
            f"rolls out {config.stable.version} -> {config.canary.version}"
        )
    return engine.apply_weights(event.canary_weight, event.state, event.step)


def _details(name: CanaryEventName, event: CanaryEvent) -> dict[str, Any]:
    # The same keys as the events of an engine that judges here.
    return {
        "event": name,
        "route": event.route,
        "state": event.state,
        "stable_version": event.stable_version,
        "canary_version": event.canary_version,
        "canary_weight": event.canary_weight,
        "stable_weight": event.stable_weight,
        "step": event.step,
        "reason": event.reason,
        "stats": event.stats,
    }


class CanaryFollower:
    """Applies the controller's events to `gateway`'s canary engines."""

    def __init__(self, gateway: GatewayServer) -> None:
        self._gateway = gateway
        self._ignored: set[tuple[str, str, str]] = set()

    async def on_event(self, event: CanaryEvent) -> None:
        engine = self._gateway.canaries().get(event.route)
        if engine is None:
            return  # a canary this replica does not serve
        try:
            changed = follow(engine, event)
        except ValueError as exc:
            key = (event.route, event.stable_version, event.canary_version)
            if key not in self._ignored:
                self._ignored.add(key)
                log.warning("canary.event_ignored", route=event.route, reason=str(exc))
            return
        if changed is None:
            return
        details = _details(changed, event)
        log.info(
            changed.replace(":", "."),
            source="controller",
            **{key: value for key, value in details.items() if key != "event"},
        )
        self._gateway.events.emit(changed, details)


async def follow_canary_weights(bus: MessageBus, gateway: GatewayServer) -> None:
    """Follow the canary controller's broadcasts until cancelled.

    >>> async def replica(bus: MessageBus, gateway: GatewayServer) -> None:
    ...     async with anyio.create_task_group() as tg:
    ...         tg.start_soon(follow_canary_weights, bus, gateway)
    ...         await gateway.serve()
    """
    follower = CanaryFollower(gateway)
    subscription = await bus.subscribe(
        bus.subjects.all_canary_events, CanaryEvent, follower.on_event
    )
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await subscription.unsubscribe()


__all__ = ["CanaryFollower", "ForeignRolloutError", "follow", "follow_canary_weights"]
