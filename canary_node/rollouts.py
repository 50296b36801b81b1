"""`Rollouts`: the canary controller's state — one `CanaryEngine` per canary
route of the gateway config, judged on the whole cluster's traffic. Pure:
the engines read the injected clock, and the I/O around them (metrics in,
KV snapshots, broadcasts, control requests) lives in `canary_node.leader`.

The bookkeeping rules:

1. One engine per route that has a `canary` in the gateway config, keyed
   by the route's name, as the replicas name it in their metrics and
   events. A leader builds them fresh for each term, then restores what
   the bucket holds: an engine never carries a previous term's counts.
2. Every event an engine emits (step, promote, rollback, pause, resume) is
   kept, in order, until `take_changes()`. The caller persists each
   changed route's snapshot before it broadcasts the route's events, so no
   replica follows a weight that a successor could not restore.
3. `control(route, action)` is the operator's promote, rollback, pause or
   resume, answered as a `ControlReply`: a route without a canary is
   ``not_found``; an action a finished rollout cannot take is ``invalid``;
   a repeat (pausing a paused rollout) is ok with ``changed=False``.

>>> from meshgate.bus.messages import VersionMetrics
>>> from meshgate.gateway.config_file import gateway_config_from_mapping
>>> from meshgate.resilience.clock import ManualClock
>>> config = gateway_config_from_mapping({"routes": [{
...     "name": "orders", "path": "/api/orders/**", "service_name": "orders",
...     "canary": {"stable": {"version": "1.0.0"}, "canary": {"version": "2.0.0", "weight": 10},
...                "promotion": {"step_interval": "5s", "min_requests": 10}}}]}, source="example")
>>> clock = ManualClock()
>>> rollouts = Rollouts.from_config(config, clock=clock)
>>> clock.advance(5)
>>> rollouts.record("orders", {"2.0.0": VersionMetrics(requests=20)})
>>> rollouts.evaluate()
{'orders': 'promote'}
>>> [(c.event, c.canary_weight) for c in rollouts.take_changes()]
[('canary:step', 25.0)]
>>> rollouts.control("orders", "pause").state
'paused'
"""

from __future__ import annotations

from collections.abc import Mapping

from meshgate.bus.messages import ControlAction, ControlReply, ReplyCode
from meshgate.gateway.canary_engine import CanaryEngine, RolloutFinishedError
from meshgate.gateway.canary_stats import Decision
from meshgate.gateway.canary_status import (
    CANARY_EVENTS,
    CanaryEventInfo,
    CanarySnapshot,
    CanaryStatus,
)
from meshgate.gateway.canary_window import VersionBatch
from meshgate.gateway.config import GatewayConfig
from meshgate.resilience.clock import Clock


class Rollouts:
    """The canary engines of one leadership term; see the module docstring."""

    def __init__(self, engines: Mapping[str, CanaryEngine]) -> None:
        self._engines = dict(engines)
        self._changes: list[CanaryEventInfo] = []
        for engine in self._engines.values():
            for event in CANARY_EVENTS:
                engine.on(event, self._keep)

    @classmethod
    def from_config(cls, config: GatewayConfig, *, clock: Clock) -> Rollouts:
        """An engine for every route of `config` with a canary."""
        return cls(
            {
                route.name: CanaryEngine(route.canary, clock=clock, route=route.name)
                for route in config.routes
                if route.canary is not None
            }
        )

    @property
    def routes(self) -> tuple[str, ...]:
        return tuple(self._engines)

    def engine(self, route: str) -> CanaryEngine:
        """The engine of `route`; `KeyError` when the route has no canary."""
        return self._engines[route]

    def record(self, route: str, versions: Mapping[str, VersionBatch]) -> None:
        """Count traffic of `route` (summed reports, keyed by version)."""
        engine = self._engines.get(route)
        if engine is not None:
            engine.record_metrics(versions)

    def evaluate(self) -> dict[str, Decision]:
        """Judge every active rollout, acting as its auto flags allow; the
        decision per route (finished and paused rollouts are left out)."""
        return {
            route: engine.evaluate()
            for route, engine in self._engines.items()
            if engine.state == "active"
        }

    def control(self, route: str, action: ControlAction) -> ControlReply:
        """Apply an operator's `action` to `route`'s rollout (rule 3)."""
        engine = self._engines.get(route)
        if engine is None:
            known = ", ".join(repr(name) for name in self._engines) or "none"
            return ControlReply(
                ok=False,
                code="not_found",
                error=f"route {route!r} has no canary (canary routes: {known})",
            )
        act = {
            "promote": engine.promote,
            "rollback": engine.rollback,
            "pause": engine.pause,
            "resume": engine.resume,
        }[action]
        try:
            changed = act()
        except RolloutFinishedError as exc:
            return _reply(engine.get_status(), ok=False, code="invalid", error=str(exc))
        return _reply(engine.get_status(), ok=True, changed=changed)

    def restore(self, snapshot: CanarySnapshot, *, wall_now: float) -> None:
        """Resume `snapshot`'s rollout (see `CanaryEngine.restore`); raises
        `ValueError` when it belongs to another rollout or route."""
        engine = self._engines.get(snapshot.route)
        if engine is None:
            raise ValueError(f"route {snapshot.route!r} has no canary here")
        engine.restore(snapshot, wall_now=wall_now)

    def snapshot(self, route: str, *, wall_now: float) -> CanarySnapshot:
        """`route`'s durable state, to persist."""
        return self._engines[route].export_state(wall_now=wall_now)

    def status(self, route: str) -> CanaryStatus:
        return self._engines[route].get_status()

    def _keep(self, change: CanaryEventInfo) -> None:
        # Looked up at each event: `take_changes` replaces the list.
        self._changes.append(change)

    def take_changes(self) -> list[CanaryEventInfo]:
        """The events emitted since the last call, oldest first."""
        changes, self._changes = self._changes, []
        return changes


def _reply(
    status: CanaryStatus,
    *,
    ok: bool,
    changed: bool | None = None,
    code: ReplyCode | None = None,
    error: str | None = None,
) -> ControlReply:
    return ControlReply(
        ok=ok,
        changed=changed,
        code=code,
        error=error,
        state=status.state,
        stable_weight=status.stable_weight,
        canary_weight=status.canary_weight,
        step=status.current_step,
    )


__all__ = ["Rollouts"]
