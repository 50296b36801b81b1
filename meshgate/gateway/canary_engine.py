"""`CanaryEngine`: one rollout's whole state machine. Everything that moves a
canary lives in this file; nothing here does I/O, and the only time it reads
is its injected clock.

The rules:

1. States: ``active`` (judged and stepped), ``paused`` (weights frozen,
   requests still counted), ``promoted`` (canary at 100%) and
   ``rolled-back`` (canary at 0%). The last two are terminal.
2. Weights are percent; the stable's is always ``100 - canary``. The rollout
   starts at `canary.weight`; `current_step` is the index of the last entry
   of `promotion.steps` at or below it (-1 if none), so the next step is the
   first one above the starting weight. If `stable.weight` is given it must
   make 100 with `canary.weight`.
3. `evaluate()` judges the canary on the evaluation window with
   `meshgate.gateway.canary_stats.judge` (error-rate strategy: failed
   requests against `error_threshold`; latency strategy: requests slower
   than `latency_threshold` against 1%, i.e. the p99) and answers:
   - ``"rollback"`` as soon as the judgement is rollback (no waiting for
     `step_interval`); with `auto_rollback` the canary goes to 0%;
   - ``"promote"`` when the judgement is promote and `step_interval` has
     passed since the last weight change; with `auto_promote` the canary
     moves to the next step, or, past the last step, to 100% and
     ``promoted``. So with steps ending at 100 the canary spends a full step
     at 100% and is then promoted;
   - ``"hold"`` otherwise, and always when not ``active`` (then it changes
     nothing at all). Without the auto flag the answer is advice only.
   A judgement needs `min_requests` canary requests in the window (for
   latency: requests whose latency was reported), except at weight 0,
   where no request can come and only time counts.
4. Whenever the canary weight changes (a step, `apply_weights`, `restore`),
   the canary's window empties: each weight is judged on traffic at that
   weight. The stable's window is kept; its version has not changed.
5. Manual controls work in ``active`` and ``paused``: `promote()` (canary
   100%, ``promoted``), `rollback()` (0%, ``rolled-back``), `pause()`,
   `resume()` (which restarts the step clock, so a resumed rollout is
   watched for a full `step_interval` before its next step). Repeating the
   state a rollout is already in is a no-op and returns False; anything else
   after a terminal state raises `RolloutFinishedError`: a finished rollout
   is changed by a new rollout, not by undoing this one.
6. Each transition is complete before its event's handlers run. Handlers are
   sync callables given a `CanaryEventInfo`; all of them run, then the first
   exception one raised reaches the caller.
7. `export_state`/`restore` carry the state, weight, step and the wall-clock
   time of the last step, so a standby controller takes over at the same step
   and its next step falls `step_interval` after the old leader's last.
   `apply_weights` lets a gateway replica follow the controller's broadcast
   without judging, silently (the broadcast itself carries the event).

>>> from meshgate.resilience.clock import ManualClock
>>> clock = ManualClock()
>>> engine = CanaryEngine({
...     "stable": {"version": "1.0.0", "weight": 90},
...     "canary": {"version": "2.0.0", "weight": 10},
...     "promotion": {"error_threshold": 5, "step_interval": "15s", "min_requests": 10},
... }, clock=clock, route="/api/orders")
>>> for _ in range(20):
...     engine.record_success("canary", 12.0)
>>> engine.evaluate()  # healthy, but the step interval has not passed
'hold'
>>> clock.advance(15)
>>> engine.evaluate(), engine.get_status().canary_weight
('promote', 25.0)
>>> for _ in range(20):
...     engine.record_failure("canary", 12.0)
>>> engine.evaluate(), engine.get_status().state
('rollback', 'rolled-back')
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping
from typing import Any, get_args

import msgspec

from meshgate.gateway.canary_assignment import pick_by_chance, pick_sticky
from meshgate.gateway.canary_config import CanaryConfig
from meshgate.gateway.canary_stats import (
    P99_LIMIT,
    Decision,
    Judgement,
    Proportion,
    judge,
)
from meshgate.gateway.canary_status import (
    CANARY_EVENTS,
    TERMINAL_STATES,
    CanaryEventInfo,
    CanaryEventName,
    CanarySnapshot,
    CanaryStats,
    CanaryStatus,
    RolloutState,
    TargetStats,
)
from meshgate.gateway.canary_window import (
    DEFAULT_SLOTS,
    CanaryWindow,
    Target,
    VersionBatch,
    count_slower_than,
)
from meshgate.resilience.clock import Clock

CanaryEventHandler = Callable[[CanaryEventInfo], object]
"""Told about each event after the transition; sync, return value ignored."""

_STATES: tuple[RolloutState, ...] = get_args(RolloutState)


def _implied_event(was: RolloutState, now: RolloutState) -> CanaryEventName:
    # What a follower's change amounts to: a new state names its event; the
    # same state with a new weight or step is a step.
    if now == "promoted":
        return "canary:promote"
    if now == "rolled-back":
        return "canary:rollback"
    if now == "paused" and was != "paused":
        return "canary:pause"
    if now == "active" and was == "paused":
        return "canary:resume"
    return "canary:step"


class RolloutFinishedError(RuntimeError):
    """A control that a promoted or rolled-back rollout cannot take."""


class CanaryEngine:
    """A canary rollout: counts, judgement, steps and events; see the module
    docstring for its rules.

    `config` is a `CanaryConfig` or a mapping of the same shape (validated
    with msgspec, whose error names the path of a bad field). `route` labels
    events and salts sticky assignment.
    """

    def __init__(
        self,
        config: CanaryConfig | Mapping[str, Any],
        *,
        clock: Clock = time.monotonic,
        route: str = "",
        window_slots: int = DEFAULT_SLOTS,
    ) -> None:
        if not isinstance(config, CanaryConfig):
            config = msgspec.convert(config, CanaryConfig)
        self.config = config
        self.route = route
        self._clock = clock
        promotion = config.promotion
        self._steps = promotion.steps
        self._step_interval = promotion.step_interval_seconds
        window = promotion.evaluation_window_seconds
        if window <= 0:
            raise ValueError(
                f"evaluation_window={promotion.evaluation_window!r} is not allowed: expected > 0"
            )
        start = config.canary.weight
        if config.stable.weight and config.stable.weight + start != 100:
            raise ValueError(
                f"stable.weight={config.stable.weight!r} and canary.weight={start!r} "
                "are not allowed: expected weights that sum to 100 (or no stable.weight)"
            )
        self._window = CanaryWindow(window, window_slots)
        self._versions: dict[str, Target] = {
            config.stable.version: "stable",
            config.canary.version: "canary",
        }
        self._salt = f"{route}\0{config.canary.version}"
        self._state: RolloutState = "active"
        self._weight = start
        self._step = bisect.bisect_right(self._steps, start) - 1
        self._last_step_at = clock()
        self._last_decision: Decision | None = None
        self._last_reason: str | None = None
        self._handlers: dict[CanaryEventName, list[CanaryEventHandler]] = {
            event: [] for event in CANARY_EVENTS
        }

    # -- counting ---------------------------------------------------------------

    def record_success(self, target: str, latency_ms: float) -> None:
        """Count a request to `target` ("stable" or "canary") that succeeded."""
        self._window.record(target, ok=True, latency_ms=latency_ms, now=self._clock())

    def record_failure(self, target: str, latency_ms: float) -> None:
        """Count a request to `target` ("stable" or "canary") that failed."""
        self._window.record(target, ok=False, latency_ms=latency_ms, now=self._clock())

    def record_metrics(self, versions: Mapping[str, VersionBatch]) -> None:
        """Count one replica's interval report (`MetricsReport.versions`);
        versions other than the stable and canary ones are ignored.

        >>> from meshgate.bus.messages import VersionMetrics
        >>> engine = CanaryEngine({"stable": {"version": "1"}, "canary": {"version": "2"}},
        ...                       clock=lambda: 0.0)
        >>> engine.record_metrics({"2": VersionMetrics(requests=40, errors=2)})
        >>> engine.get_status().stats.canary.error_rate
        5.0
        """
        self._window.add_versions(versions, self._versions, self._clock())

    # -- deciding ---------------------------------------------------------------

    def evaluate(self) -> Decision:
        """Judge the canary and act as the auto flags allow (rule 3)."""
        if self._state != "active":
            return "hold"
        now = self._clock()
        judgement = self._judge(now)
        decision = judgement.decision
        reason = judgement.reason
        if decision == "promote":
            due_in = self._last_step_at + self._step_interval - now
            if due_in > 0:
                decision = "hold"
                reason = f"{reason}; next step in {due_in:.3g}s"
        self._last_decision = decision
        self._last_reason = reason
        if decision == "rollback" and self.config.promotion.auto_rollback:
            self._finish("rolled-back", "canary:rollback", reason, now)
        elif decision == "promote" and self.config.promotion.auto_promote:
            self._advance(reason, now)
        return decision

    def _judge(self, now: float) -> Judgement:
        promotion = self.config.promotion
        # At weight 0 no canary request can arrive; waiting for some would
        # stall the rollout before its first step.
        min_requests = promotion.min_requests if self._weight > 0 else 0
        if promotion.strategy == "latency":
            threshold = promotion.latency_threshold
            canary_latency = self._window.latency("canary", now)
            stable_latency = self._window.latency("stable", now)
            return judge(
                Proportion(count_slower_than(canary_latency, threshold), canary_latency.count),
                Proportion(count_slower_than(stable_latency, threshold), stable_latency.count),
                limit=P99_LIMIT,
                min_requests=min_requests,
                what=f"share slower than {threshold:g} ms",
            )
        canary = self._window.counts("canary", now)
        stable = self._window.counts("stable", now)
        return judge(
            Proportion(canary.errors, canary.requests),
            Proportion(stable.errors, stable.requests),
            limit=promotion.error_threshold / 100,
            min_requests=min_requests,
        )

    def _advance(self, reason: str, now: float) -> None:
        if self._step + 1 < len(self._steps):
            stats = self._stats(now)  # before the window empties: what was judged
            self._step += 1
            self._set_weight(self._steps[self._step], now)
            self._emit("canary:step", reason, stats)
        else:
            self._finish("promoted", "canary:promote", reason, now)

    # -- manual controls --------------------------------------------------------

    def promote(self) -> bool:
        """Promote fully now: canary 100%, ``promoted`` (rule 5)."""
        if not self._may_finish("promoted"):
            return False
        self._finish("promoted", "canary:promote", "promoted by hand", self._clock())
        return True

    def rollback(self) -> bool:
        """Roll back now: canary 0%, ``rolled-back`` (rule 5)."""
        if not self._may_finish("rolled-back"):
            return False
        self._finish("rolled-back", "canary:rollback", "rolled back by hand", self._clock())
        return True

    def pause(self) -> bool:
        """Freeze the weights; `evaluate()` holds until `resume()`."""
        if self._state == "paused":
            return False
        self._refuse_if_finished("pause")
        self._state = "paused"
        self._emit("canary:pause", "paused by hand", self._stats(self._clock()))
        return True

    def resume(self) -> bool:
        """Resume judging; the next step waits a full `step_interval` from now."""
        if self._state == "active":
            return False
        self._refuse_if_finished("resume")
        now = self._clock()
        self._state = "active"
        self._last_step_at = now
        self._emit("canary:resume", "resumed by hand", self._stats(now))
        return True

    def _may_finish(self, state: RolloutState) -> bool:
        if self._state == state:
            return False
        self._refuse_if_finished("promote" if state == "promoted" else "rollback")
        return True

    def _refuse_if_finished(self, action: str) -> None:
        if self._state in TERMINAL_STATES:
            raise RolloutFinishedError(
                f"cannot {action} the canary of route {self.route!r}: "
                f"its rollout is already {self._state}"
            )

    def _finish(self, state: RolloutState, event: CanaryEventName, reason: str, now: float) -> None:
        stats = self._stats(now)
        self._state = state
        if state == "promoted":
            self._step = len(self._steps) - 1
            self._set_weight(100.0, now)
        else:
            self._set_weight(0.0, now)
        self._emit(event, reason, stats)

    def _set_weight(self, weight: float, now: float) -> None:
        if weight != self._weight:
            self._window.clear("canary")
        self._weight = weight
        self._last_step_at = now

    # -- routing ------------------------------------------------------------------

    def choose(self, rand: float) -> Target:
        """The target of one request, given `rand` uniform in [0, 1).

        >>> engine = CanaryEngine({"stable": {"version": "1"},
        ...                        "canary": {"version": "2", "weight": 10}})
        >>> engine.choose(0.05), engine.choose(0.95)
        ('canary', 'stable')
        """
        return pick_by_chance(rand, self._weight)

    def choose_sticky(self, key: str) -> Target:
        """The target of client `key`: the same while the weight stays, and a
        weight increase only moves clients from stable to canary."""
        return pick_sticky(key, self._weight, self._salt)

    def choose_for(
        self, force: str | None, *, key: str | None = None, rand: float | None = None
    ) -> Target:
        """The target of a request that may carry an override.

        `force` is the override header's value: ``"always"`` sends the
        request to the canary, ``"never"`` to the stable, None leaves it to
        the weights (sticky by `key` when given, else by `rand`). A finished
        rollout ignores overrides: nothing goes to a rolled-back canary, and
        after promotion everything goes to the canary.

        >>> engine = CanaryEngine({"stable": {"version": "1"}, "canary": {"version": "2"}})
        >>> engine.choose_for("always"), engine.choose_for(None, rand=0.5)
        ('canary', 'stable')
        """
        if force not in (None, "always", "never"):
            raise ValueError(f"force={force!r} is not allowed: expected 'always', 'never' or None")
        if self._state == "rolled-back":
            return "stable"
        if self._state == "promoted":
            return "canary"
        if force == "always":
            return "canary"
        if force == "never":
            return "stable"
        if key is not None:
            return self.choose_sticky(key)
        if rand is not None:
            return self.choose(rand)
        raise ValueError("choose_for needs `key` or `rand` when there is no override")

    # -- reading ------------------------------------------------------------------

    @property
    def state(self) -> RolloutState:
        """Where the rollout is (cheaper than `get_status().state`)."""
        return self._state

    @property
    def canary_weight(self) -> float:
        """The canary's weight in percent (the stable has the rest)."""
        return self._weight

    @property
    def current_step(self) -> int:
        """The index in `promotion.steps` of the last step reached (-1: none)."""
        return self._step

    def get_status(self) -> CanaryStatus:
        """The rollout as it stands, with the window's statistics."""
        return CanaryStatus(
            route=self.route,
            state=self._state,
            canary_weight=self._weight,
            stable_weight=100.0 - self._weight,
            current_step=self._step,
            stable_version=self.config.stable.version,
            canary_version=self.config.canary.version,
            last_decision=self._last_decision,
            last_reason=self._last_reason,
            last_step_at=self._last_step_at,
            stats=self._stats(self._clock()),
        )

    def _stats(self, now: float) -> CanaryStats:
        return CanaryStats(
            stable=self._target_stats("stable", now), canary=self._target_stats("canary", now)
        )

    def _target_stats(self, target: Target, now: float) -> TargetStats:
        counts = self._window.counts(target, now)
        rate = counts.errors / counts.requests * 100 if counts.requests else 0.0
        return TargetStats(
            requests=counts.requests,
            errors=counts.errors,
            error_rate=rate,
            p99_ms=self._window.latency(target, now).quantile(0.99),
        )

    # -- events ---------------------------------------------------------------------

    def on(self, event: str, handler: CanaryEventHandler) -> None:
        """Call `handler(info)` after each `event` ("canary:step", "canary:promote",
        "canary:rollback", "canary:pause", "canary:resume")."""
        self._handlers_of(event).append(handler)

    def off(self, event: str, handler: CanaryEventHandler) -> None:
        """Stop calling `handler` for `event`; a handler not registered is ignored."""
        handlers = self._handlers_of(event)
        if handler in handlers:
            handlers.remove(handler)

    def _handlers_of(self, event: str) -> list[CanaryEventHandler]:
        for name in CANARY_EVENTS:
            if name == event:
                return self._handlers[name]
        raise ValueError(
            f"event={event!r} is not allowed: expected one of {', '.join(CANARY_EVENTS)}"
        )

    def _emit(self, event: CanaryEventName, reason: str, stats: CanaryStats) -> None:
        handlers = tuple(self._handlers[event])
        if not handlers:
            return
        info = CanaryEventInfo(
            event=event,
            route=self.route,
            state=self._state,
            stable_version=self.config.stable.version,
            canary_version=self.config.canary.version,
            canary_weight=self._weight,
            stable_weight=100.0 - self._weight,
            step=self._step,
            reason=reason,
            stats=stats,
        )
        failure: Exception | None = None
        for handler in handlers:
            try:
                handler(info)
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure

    # -- replication ------------------------------------------------------------------

    def export_state(self, *, wall_now: float) -> CanarySnapshot:
        """The durable state, with the last step's time as wall clock
        (`wall_now` is the caller's `time.time()` now)."""
        return CanarySnapshot(
            route=self.route,
            stable_version=self.config.stable.version,
            canary_version=self.config.canary.version,
            state=self._state,
            canary_weight=self._weight,
            step=self._step,
            last_step_wall_at=wall_now - (self._clock() - self._last_step_at),
            last_decision=self._last_decision,
            last_reason=self._last_reason,
        )

    def restore(self, snapshot: CanarySnapshot, *, wall_now: float) -> None:
        """Take over `snapshot`'s rollout: same state, weight and step, and the
        next step `step_interval` after the snapshot's last one (wall time; a
        snapshot from the future counts as taken now). Emits nothing.

        Raises `ValueError` when the snapshot belongs to another route or
        rollout, or its step or weight do not fit this configuration.
        """
        if (snapshot.route, snapshot.stable_version, snapshot.canary_version) != (
            self.route,
            self.config.stable.version,
            self.config.canary.version,
        ):
            raise ValueError(
                f"snapshot of route {snapshot.route!r} ({snapshot.stable_version} -> "
                f"{snapshot.canary_version}) does not belong to route {self.route!r} "
                f"({self.config.stable.version} -> {self.config.canary.version})"
            )
        self._check_position(snapshot.canary_weight, snapshot.state, snapshot.step)
        now = self._clock()
        elapsed = max(0.0, wall_now - snapshot.last_step_wall_at)
        self._state = snapshot.state
        self._step = snapshot.step
        self._set_weight(snapshot.canary_weight, now - elapsed)
        self._last_decision = snapshot.last_decision
        self._last_reason = snapshot.last_reason

    def apply_weights(self, canary_weight: float, state: str, step: int) -> CanaryEventName | None:
        """Follow the controller: take its weight, state and step as they are,
        without judging or emitting. Returns the event the change amounts to
        (None when nothing changed), for a caller that wants to tell.

        >>> engine = CanaryEngine({"stable": {"version": "1"},
        ...                        "canary": {"version": "2", "weight": 10}})
        >>> engine.apply_weights(25.0, "active", 1), engine.choose(0.2)
        ('canary:step', 'canary')
        """
        checked = self._check_position(canary_weight, state, step)
        was = self._state
        if (was, self._weight, self._step) == (checked, canary_weight, step):
            return None
        self._state = checked
        self._step = step
        if canary_weight != self._weight:
            self._set_weight(canary_weight, self._clock())
        return _implied_event(was, checked)

    def _check_position(self, weight: float, state: str, step: int) -> RolloutState:
        if not 0 <= weight <= 100:
            raise ValueError(f"canary_weight={weight!r} is not allowed: expected 0..100")
        if not -1 <= step < len(self._steps):
            raise ValueError(f"step={step!r} is not allowed: expected -1..{len(self._steps) - 1}")
        for known in _STATES:
            if known == state:
                return known
        raise ValueError(f"state={state!r} is not allowed: expected one of {', '.join(_STATES)}")

    def __repr__(self) -> str:
        return (
            f"CanaryEngine(route={self.route!r}, state={self._state!r}, "
            f"canary_weight={self._weight!r}, step={self._step!r})"
        )


__all__ = ["CanaryEngine", "CanaryEventHandler", "RolloutFinishedError"]
