"""The canary engine's state machine, driven by a manual clock."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.bus.messages import VersionMetrics
from meshgate.gateway.canary_config import CanaryConfig
from meshgate.gateway.canary_engine import CanaryEngine, RolloutFinishedError
from meshgate.gateway.canary_simulation import Traffic, simulate
from meshgate.gateway.canary_status import CanaryEventInfo, CanarySnapshot
from meshgate.resilience.clock import ManualClock

ROUTE = "/api/orders"
EVENTS = ("canary:step", "canary:promote", "canary:rollback", "canary:pause", "canary:resume")


def config(**promotion: Any) -> dict[str, Any]:
    return {
        "stable": {"version": "1.0.0", "weight": 90},
        "canary": {"version": "2.0.0", "weight": 10},
        "promotion": {
            "error_threshold": 5,
            "evaluation_window": "30s",
            "step_interval": "15s",
            "min_requests": 10,
            **promotion,
        },
    }


class Rollout:
    """An engine on a manual clock, and every event it emitted."""

    def __init__(self, settings: dict[str, Any] | None = None, start: float = 1000.0) -> None:
        self.clock = ManualClock(start)
        self.engine = CanaryEngine(settings or config(), clock=self.clock, route=ROUTE)
        self.events: list[CanaryEventInfo] = []
        for event in EVENTS:
            self.engine.on(event, self.events.append)

    def send(self, target: str, requests: int, errors: int = 0, latency_ms: float = 20.0) -> None:
        for i in range(requests):
            if i < errors:
                self.engine.record_failure(target, latency_ms)
            else:
                self.engine.record_success(target, latency_ms)

    def healthy_traffic(self) -> None:
        self.send("stable", 200, errors=2)
        self.send("canary", 50)

    def step_once(self) -> str:
        """Wait out the step interval on healthy traffic, then evaluate."""
        self.clock.advance(15.0)
        self.healthy_traffic()
        return self.engine.evaluate()

    @property
    def names(self) -> list[str]:
        return [event.event for event in self.events]


# -- construction ------------------------------------------------------------------


def test_a_mapping_config_is_validated_and_errors_name_the_path() -> None:
    bad = config(error_threshold="five")
    with pytest.raises(msgspec.ValidationError, match=r"\$\.promotion\.error_threshold"):
        CanaryEngine(bad)


def test_a_config_struct_is_taken_as_it_is() -> None:
    settings = msgspec.convert(config(), CanaryConfig)
    assert CanaryEngine(settings).config is settings


def test_weights_that_do_not_make_100_are_refused() -> None:
    settings = config()
    settings["stable"]["weight"] = 80
    with pytest.raises(ValueError, match=r"stable.weight=80\.0 and canary.weight=10\.0"):
        CanaryEngine(settings)


def test_stable_weight_may_be_left_out() -> None:
    settings = config()
    del settings["stable"]["weight"]
    status = CanaryEngine(settings).get_status()
    assert (status.stable_weight, status.canary_weight) == (90.0, 10.0)


def test_an_empty_evaluation_window_is_refused() -> None:
    with pytest.raises(ValueError, match="evaluation_window=0"):
        CanaryEngine(config(evaluation_window=0))


@pytest.mark.parametrize(
    ("weight", "step", "next_weight"),
    [(0, -1, 10.0), (5, -1, 10.0), (10, 0, 25.0), (30, 1, 50.0), (75, 3, 100.0)],
)
def test_the_next_step_is_the_first_one_above_the_starting_weight(
    weight: float, step: int, next_weight: float
) -> None:
    settings = config(min_requests=0)
    settings["canary"]["weight"] = weight
    del settings["stable"]["weight"]
    rollout = Rollout(settings)
    assert rollout.engine.get_status().current_step == step
    assert rollout.step_once() == "promote"
    assert rollout.engine.canary_weight == next_weight
    assert rollout.engine.current_step == step + 1


def test_the_initial_status() -> None:
    rollout = Rollout()
    status = rollout.engine.get_status()
    assert status.route == ROUTE
    assert status.state == "active"
    assert (status.canary_weight, status.stable_weight, status.current_step) == (10.0, 90.0, 0)
    assert (status.stable_version, status.canary_version) == ("1.0.0", "2.0.0")
    assert status.last_decision is None
    assert status.last_step_at == 1000.0
    assert status.stats.canary.requests == 0


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="target='preview'"):
        CanaryEngine(config()).record_success("preview", 1.0)


# -- judging and stepping ---------------------------------------------------------


def test_no_decision_without_min_requests_on_the_canary() -> None:
    rollout = Rollout()
    rollout.send("stable", 500)
    rollout.send("canary", 9, errors=9)
    rollout.clock.advance(20.0)
    assert rollout.engine.evaluate() == "hold"
    status = rollout.engine.get_status()
    assert status.last_reason == "canary has 9 requests in the window, needs 10"
    assert status.canary_weight == 10.0
    rollout.send("canary", 1, errors=1)
    assert rollout.engine.evaluate() == "rollback"


def test_a_healthy_canary_waits_for_the_step_interval() -> None:
    rollout = Rollout()
    rollout.healthy_traffic()
    rollout.clock.advance(14.999)
    assert rollout.engine.evaluate() == "hold"
    assert "next step in" in (rollout.engine.get_status().last_reason or "")
    rollout.clock.advance(0.001)
    assert rollout.engine.evaluate() == "promote"
    assert rollout.engine.canary_weight == 25.0


def test_a_step_emits_the_stats_it_was_judged_on_and_starts_the_canary_afresh() -> None:
    rollout = Rollout()
    assert rollout.step_once() == "promote"
    (event,) = rollout.events
    assert event.event == "canary:step"
    assert (event.route, event.stable_version, event.canary_version) == (ROUTE, "1.0.0", "2.0.0")
    assert (event.canary_weight, event.stable_weight, event.step) == (25.0, 75.0, 1)
    assert event.state == "active"
    assert event.stats.canary.requests == 50
    assert event.stats.stable.requests == 200
    assert event.stats.stable.error_rate == 1.0
    assert event.stats.canary.p99_ms == pytest.approx(20.0, rel=0.01)
    assert "within 5%" in event.reason
    status = rollout.engine.get_status()
    assert status.stats.canary.requests == 0  # judged afresh at 25%
    assert status.stats.stable.requests == 200  # the stable's window is kept
    assert status.last_step_at == 1015.0


def test_the_next_step_needs_fresh_canary_requests_at_the_new_weight() -> None:
    rollout = Rollout()
    rollout.step_once()
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "hold"
    rollout.send("canary", 10)
    assert rollout.engine.evaluate() == "promote"
    assert rollout.engine.canary_weight == 50.0


def test_a_full_rollout_steps_through_every_weight_then_promotes() -> None:
    rollout = Rollout()
    weights = []
    while rollout.engine.state == "active":
        assert rollout.step_once() == "promote"
        weights.append(rollout.engine.canary_weight)
    assert weights == [25.0, 50.0, 75.0, 100.0, 100.0]
    assert rollout.names == ["canary:step"] * 4 + ["canary:promote"]
    promoted = rollout.events[-1]
    assert (promoted.state, promoted.canary_weight, promoted.stable_weight) == ("promoted", 100, 0)
    assert promoted.step == 4
    status = rollout.engine.get_status()
    assert (status.state, status.current_step) == ("promoted", 4)
    assert rollout.step_once() == "hold"  # finished: nothing more happens
    assert len(rollout.events) == 5


def test_steps_that_stop_short_of_100_end_in_a_jump_to_100() -> None:
    rollout = Rollout(config(steps=[10, 50]))
    assert rollout.step_once() == "promote"
    assert rollout.engine.canary_weight == 50.0
    assert rollout.step_once() == "promote"
    assert (rollout.engine.state, rollout.engine.canary_weight) == ("promoted", 100.0)
    assert rollout.names == ["canary:step", "canary:promote"]


def test_a_bad_canary_is_rolled_back_at_once_without_waiting_for_a_step() -> None:
    rollout = Rollout()
    rollout.send("stable", 500, errors=5)
    rollout.send("canary", 60, errors=15)
    rollout.clock.advance(1.0)
    assert rollout.engine.evaluate() == "rollback"
    status = rollout.engine.get_status()
    assert (status.state, status.canary_weight, status.stable_weight) == ("rolled-back", 0, 100)
    assert status.current_step == 0  # where it was stopped
    assert status.last_decision == "rollback"
    (event,) = rollout.events
    assert event.event == "canary:rollback"
    assert event.stats.canary.requests == 60
    assert event.stats.canary.errors == 15
    assert event.stats.canary.error_rate == 25.0
    assert "above 5%" in event.reason
    assert rollout.engine.evaluate() == "hold"


def test_a_canary_is_not_rolled_back_for_errors_the_stable_shows_too() -> None:
    rollout = Rollout()
    rollout.send("stable", 500, errors=100)  # 20%: a shared dependency is down
    rollout.send("canary", 60, errors=12)
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "hold"
    assert rollout.engine.state == "active"
    assert rollout.engine.canary_weight == 10.0  # and no step either
    assert "not worse than stable 20%" in (rollout.engine.get_status().last_reason or "")


def test_errors_older_than_the_window_no_longer_count() -> None:
    rollout = Rollout()
    rollout.send("stable", 500, errors=5)
    rollout.send("canary", 10, errors=2)  # 20%, but not significant on 10
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "hold"
    rollout.clock.advance(16.0)  # the errors have left the 30 s window
    rollout.send("canary", 20)
    assert rollout.engine.evaluate() == "promote"


def test_without_auto_rollback_the_verdict_is_advice_only() -> None:
    rollout = Rollout(config(auto_rollback=False))
    rollout.send("canary", 60, errors=30)
    assert rollout.engine.evaluate() == "rollback"
    assert rollout.engine.evaluate() == "rollback"
    assert rollout.engine.state == "active"
    assert rollout.engine.canary_weight == 10.0
    assert rollout.events == []


def test_without_auto_promote_the_verdict_is_advice_only() -> None:
    rollout = Rollout(config(auto_promote=False))
    assert rollout.step_once() == "promote"
    assert rollout.engine.canary_weight == 10.0
    assert rollout.events == []
    assert rollout.engine.get_status().last_decision == "promote"


def test_a_paused_rollout_holds_and_changes_nothing() -> None:
    rollout = Rollout()
    rollout.healthy_traffic()
    rollout.clock.advance(1.0)
    rollout.engine.evaluate()
    assert rollout.engine.pause() is True
    before = rollout.engine.get_status()
    rollout.send("canary", 100, errors=100)
    rollout.clock.advance(20.0)
    assert rollout.engine.evaluate() == "hold"
    after = rollout.engine.get_status()
    assert (after.state, after.canary_weight, after.last_decision, after.last_reason) == (
        "paused",
        10.0,
        before.last_decision,
        before.last_reason,
    )
    assert rollout.names == ["canary:pause"]


def test_resume_restarts_the_step_clock() -> None:
    rollout = Rollout()
    rollout.engine.pause()
    rollout.clock.advance(20.0)
    assert rollout.engine.resume() is True
    rollout.healthy_traffic()
    assert rollout.engine.evaluate() == "hold"  # 20 s since the start, 0 since resume
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "promote"
    assert rollout.names == ["canary:pause", "canary:resume", "canary:step"]
    assert rollout.events[1].reason == "resumed by hand"


def test_requests_are_counted_while_paused_and_judged_after_resume() -> None:
    rollout = Rollout()
    rollout.engine.pause()
    rollout.send("stable", 500)
    rollout.send("canary", 60, errors=30)
    rollout.engine.resume()
    assert rollout.engine.evaluate() == "rollback"


def test_a_canary_at_weight_zero_takes_its_first_step_on_time_alone() -> None:
    settings = config()
    settings["canary"]["weight"] = 0
    settings["stable"]["weight"] = 100
    rollout = Rollout(settings)
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "promote"
    assert rollout.engine.canary_weight == 10.0
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "hold"  # at 10% it needs requests again


def test_min_requests_zero_steps_an_idle_canary_on_time() -> None:
    rollout = Rollout(config(min_requests=0))
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "promote"


def test_the_step_interval_may_be_zero() -> None:
    rollout = Rollout(config(step_interval=0))
    rollout.healthy_traffic()
    assert rollout.engine.evaluate() == "promote"
    rollout.healthy_traffic()
    assert rollout.engine.evaluate() == "promote"
    assert rollout.engine.canary_weight == 50.0


# -- the latency strategy ------------------------------------------------------------


def latency_config() -> dict[str, Any]:
    return config(strategy="latency", latency_threshold=250)


def test_a_canary_whose_p99_is_over_the_threshold_and_the_stables_is_rolled_back() -> None:
    rollout = Rollout(latency_config())
    rollout.send("stable", 1000, latency_ms=30.0)
    rollout.send("canary", 90, latency_ms=30.0)
    rollout.send("canary", 10, latency_ms=900.0)  # 10% slower than 250 ms
    assert rollout.engine.evaluate() == "rollback"
    (event,) = rollout.events
    assert event.stats.canary.p99_ms == pytest.approx(900.0, rel=0.01)
    assert "share slower than 250 ms 10% of 100" in event.reason


def test_a_slow_stable_protects_an_equally_slow_canary() -> None:
    rollout = Rollout(latency_config())
    rollout.send("stable", 900, latency_ms=30.0)
    rollout.send("stable", 100, latency_ms=900.0)
    rollout.send("canary", 90, latency_ms=30.0)
    rollout.send("canary", 10, latency_ms=900.0)
    assert rollout.engine.evaluate() == "hold"


def test_a_fast_canary_is_promoted_even_with_errors_under_the_latency_strategy() -> None:
    rollout = Rollout(latency_config())
    rollout.send("stable", 1000, latency_ms=30.0)
    rollout.send("canary", 100, errors=20, latency_ms=30.0)
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "promote"


def test_one_slow_request_in_few_holds_a_latency_step() -> None:
    # Nearest-rank p99 of 50 requests is the slowest one: over the threshold.
    rollout = Rollout(latency_config())
    rollout.send("canary", 49, latency_ms=30.0)
    rollout.send("canary", 1, latency_ms=900.0)
    rollout.clock.advance(15.0)
    assert rollout.engine.evaluate() == "hold"


# -- manual controls -------------------------------------------------------------------


def test_promote_by_hand_goes_straight_to_100() -> None:
    rollout = Rollout()
    assert rollout.engine.promote() is True
    status = rollout.engine.get_status()
    assert (status.state, status.canary_weight, status.current_step) == ("promoted", 100.0, 4)
    (event,) = rollout.events
    assert (event.event, event.reason) == ("canary:promote", "promoted by hand")


def test_rollback_by_hand_works_while_paused() -> None:
    rollout = Rollout()
    rollout.engine.pause()
    assert rollout.engine.rollback() is True
    assert (rollout.engine.state, rollout.engine.canary_weight) == ("rolled-back", 0.0)
    assert rollout.names == ["canary:pause", "canary:rollback"]


def test_repeating_the_current_state_is_a_no_op() -> None:
    rollout = Rollout()
    assert rollout.engine.resume() is False
    assert rollout.engine.pause() is True
    assert rollout.engine.pause() is False
    rollout.engine.rollback()
    assert rollout.engine.rollback() is False
    assert rollout.names == ["canary:pause", "canary:rollback"]


@pytest.mark.parametrize("finish", ["promote", "rollback"])
@pytest.mark.parametrize("action", ["promote", "rollback", "pause", "resume"])
def test_a_finished_rollout_refuses_other_controls(finish: str, action: str) -> None:
    rollout = Rollout()
    getattr(rollout.engine, finish)()
    if (finish, action) in {("promote", "promote"), ("rollback", "rollback")}:
        assert getattr(rollout.engine, action)() is False
        return
    with pytest.raises(RolloutFinishedError, match=f"cannot {action} the canary of route"):
        getattr(rollout.engine, action)()
    assert len(rollout.events) == 1


# -- events -------------------------------------------------------------------------


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="canary:promote"):
        CanaryEngine(config()).on("canary:promoted", print)


def test_off_removes_a_handler_and_ignores_strangers() -> None:
    rollout = Rollout()
    seen: list[CanaryEventInfo] = []
    rollout.engine.on("canary:pause", seen.append)
    rollout.engine.off("canary:pause", seen.append)
    rollout.engine.off("canary:pause", print)
    rollout.engine.pause()
    assert seen == []


def test_every_handler_runs_and_the_first_failure_reaches_the_caller() -> None:
    rollout = Rollout()
    seen: list[str] = []

    def broken(info: CanaryEventInfo) -> None:
        raise RuntimeError("handler broke")

    rollout.engine.on("canary:rollback", broken)
    rollout.engine.on("canary:rollback", lambda info: seen.append(info.event))
    with pytest.raises(RuntimeError, match="handler broke"):
        rollout.engine.rollback()
    assert seen == ["canary:rollback"]
    assert rollout.engine.state == "rolled-back"  # the transition is complete


# -- routing --------------------------------------------------------------------------


def test_choose_splits_by_weight() -> None:
    engine = CanaryEngine(config())
    assert engine.choose(0.0) == "canary"
    assert engine.choose(0.0999) == "canary"
    assert engine.choose(0.1) == "stable"
    with pytest.raises(ValueError, match=r"rand=1\.0"):
        engine.choose(1.0)


def test_choose_follows_the_terminal_weights() -> None:
    rolled_back = CanaryEngine(config())
    rolled_back.rollback()
    assert rolled_back.choose(0.0) == "stable"
    promoted = CanaryEngine(config())
    promoted.promote()
    assert promoted.choose(0.999999) == "canary"


def test_sticky_assignment_is_stable_and_close_to_the_weight() -> None:
    engine = CanaryEngine(config())
    sides = [engine.choose_sticky(f"user-{i}") for i in range(20_000)]
    assert sides == [engine.choose_sticky(f"user-{i}") for i in range(20_000)]
    assert sides.count("canary") / len(sides) == pytest.approx(0.10, abs=0.01)


def test_sticky_assignment_is_the_same_on_every_replica() -> None:
    one, other = CanaryEngine(config(), route=ROUTE), CanaryEngine(config(), route=ROUTE)
    assert [one.choose_sticky(f"k{i}") for i in range(500)] == [
        other.choose_sticky(f"k{i}") for i in range(500)
    ]


def test_each_rollout_draws_its_own_clients() -> None:
    orders = CanaryEngine(config(), route="/api/orders")
    users = CanaryEngine(config(), route="/api/users")
    first = {i for i in range(5000) if orders.choose_sticky(f"user-{i}") == "canary"}
    second = {i for i in range(5000) if users.choose_sticky(f"user-{i}") == "canary"}
    assert len(first & second) < len(first) / 3


weights = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(keys=st.lists(st.text(max_size=20), min_size=1, max_size=30), low=weights, high=weights)
def test_raising_the_weight_never_moves_a_client_from_canary_to_stable(
    keys: list[str], low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    engine = CanaryEngine(config(), route=ROUTE)
    engine.apply_weights(low, "active", 0)
    before = [engine.choose_sticky(key) for key in keys]
    engine.apply_weights(high, "active", 1)
    after = [engine.choose_sticky(key) for key in keys]
    for was, now in zip(before, after, strict=True):
        assert not (was == "canary" and now == "stable")


def test_overrides_force_a_side_while_the_rollout_runs() -> None:
    engine = CanaryEngine(config())
    assert engine.choose_for("always", rand=0.99) == "canary"
    assert engine.choose_for("never", rand=0.0) == "stable"
    assert engine.choose_for(None, rand=0.05) == "canary"
    assert engine.choose_for(None, key="user-1") == engine.choose_sticky("user-1")
    engine.pause()
    assert engine.choose_for("always") == "canary"


def test_a_finished_rollout_ignores_overrides() -> None:
    rolled_back = CanaryEngine(config())
    rolled_back.rollback()
    assert rolled_back.choose_for("always") == "stable"
    promoted = CanaryEngine(config())
    promoted.promote()
    assert promoted.choose_for("never") == "canary"


def test_choose_for_checks_its_arguments() -> None:
    engine = CanaryEngine(config())
    with pytest.raises(ValueError, match="force='sometimes'"):
        engine.choose_for("sometimes", rand=0.5)
    with pytest.raises(ValueError, match="needs `key` or `rand`"):
        engine.choose_for(None)


# -- reports from replicas --------------------------------------------------------------


def test_metrics_reports_feed_the_judgement() -> None:
    rollout = Rollout()
    for _ in range(3):  # three replicas' intervals
        rollout.engine.record_metrics(
            {
                "1.0.0": VersionMetrics(requests=300, errors=3),
                "2.0.0": VersionMetrics(requests=30, errors=10),
                "9.9.9": VersionMetrics(requests=5, errors=5),
            }
        )
    stats = rollout.engine.get_status().stats
    assert (stats.stable.requests, stats.canary.requests, stats.canary.errors) == (900, 90, 30)
    assert rollout.engine.evaluate() == "rollback"


# -- export, restore and following ----------------------------------------------------------


def test_a_standby_resumes_at_the_same_step_and_on_the_same_schedule() -> None:
    leader = Rollout(start=1000.0)  # wall clock = monotonic + 1_700_000_000
    leader.step_once()  # at 1015: 25%
    leader.clock.advance(5.0)
    snapshot = leader.engine.export_state(wall_now=1_700_001_020.0)
    assert snapshot.last_step_wall_at == 1_700_001_015.0
    stored = msgspec.json.decode(msgspec.json.encode(snapshot), type=CanarySnapshot)

    standby = Rollout(start=50.0)  # another process: another monotonic origin
    standby.clock.advance(2.0)  # taken over 2 s after the export, at wall ...022
    standby.engine.restore(stored, wall_now=1_700_001_022.0)
    status = standby.engine.get_status()
    assert (status.state, status.canary_weight, status.current_step) == ("active", 25.0, 1)
    assert standby.events == []
    # The leader's next step was due at wall ...030: 8 s from now.
    standby.healthy_traffic()
    standby.clock.advance(7.9)
    assert standby.engine.evaluate() == "hold"
    standby.clock.advance(0.1)
    assert standby.engine.evaluate() == "promote"
    assert (standby.engine.canary_weight, standby.engine.current_step) == (50.0, 2)


def test_restore_keeps_a_terminal_state() -> None:
    leader = Rollout()
    leader.engine.rollback()
    standby = Rollout()
    standby.engine.restore(leader.engine.export_state(wall_now=10.0), wall_now=11.0)
    assert (standby.engine.state, standby.engine.canary_weight) == ("rolled-back", 0.0)
    assert standby.engine.evaluate() == "hold"


def test_a_snapshot_from_the_future_counts_as_taken_now() -> None:
    leader = Rollout()
    snapshot = leader.engine.export_state(wall_now=2000.0)
    standby = Rollout(start=0.0)
    standby.engine.restore(snapshot, wall_now=1990.0)  # skewed clocks
    assert standby.engine.get_status().last_step_at == 0.0


def test_restore_refuses_another_rollouts_snapshot() -> None:
    snapshot = Rollout().engine.export_state(wall_now=0.0)
    other = CanaryEngine(config(), route="/api/users")
    with pytest.raises(ValueError, match="does not belong to route '/api/users'"):
        other.restore(snapshot, wall_now=0.0)
    wrong_step = msgspec.structs.replace(snapshot, step=9)
    with pytest.raises(ValueError, match="step=9"):
        Rollout().engine.restore(wrong_step, wall_now=0.0)


def test_restore_at_a_new_weight_judges_the_canary_afresh() -> None:
    leader = Rollout()
    leader.step_once()
    standby = Rollout()
    standby.send("canary", 50, errors=50)  # what it saw at 10%
    standby.engine.restore(leader.engine.export_state(wall_now=0.0), wall_now=0.0)
    assert standby.engine.get_status().stats.canary.requests == 0


def test_a_replica_follows_the_controller_silently() -> None:
    replica = Rollout()
    replica.send("canary", 20)
    assert replica.engine.apply_weights(25.0, "active", 1) == "canary:step"
    assert replica.engine.get_status().stats.canary.requests == 0
    assert replica.engine.apply_weights(25.0, "active", 1) is None
    assert replica.engine.apply_weights(25.0, "paused", 1) == "canary:pause"
    assert replica.engine.apply_weights(25.0, "active", 1) == "canary:resume"
    assert replica.engine.apply_weights(100.0, "promoted", 4) == "canary:promote"
    assert replica.events == []
    assert replica.engine.choose(0.999) == "canary"


def test_apply_weights_checks_what_it_is_given() -> None:
    engine = CanaryEngine(config())
    with pytest.raises(ValueError, match="canary_weight=101"):
        engine.apply_weights(101, "active", 0)
    with pytest.raises(ValueError, match="state='done'"):
        engine.apply_weights(10, "done", 0)
    with pytest.raises(ValueError, match="step=5"):
        engine.apply_weights(10, "active", 5)
    assert engine.apply_weights(0.0, "rolled-back", 0) == "canary:rollback"


# -- simulation: noise does not roll back, a bad canary does not last ------------------------

# The canary gets 200 requests per 30 s window at its first weight (10% of
# about 67 requests per second); the stable errs 1% of the time.
SIMULATED = msgspec.convert(config(), CanaryConfig)
RATE = 200 / (0.10 * 30)


def test_fifty_healthy_canaries_are_all_promoted_and_never_rolled_back() -> None:
    outcomes = [
        simulate(SIMULATED, Traffic(rate=RATE, canary_error_rate=0.01), seed=seed)
        for seed in range(50)
    ]
    assert [outcome.state for outcome in outcomes] == ["promoted"] * 50
    assert all(outcome.steps_taken == 4 for outcome in outcomes)


def test_fifty_canaries_at_20_percent_errors_are_rolled_back_within_one_window() -> None:
    outcomes = [
        simulate(SIMULATED, Traffic(rate=RATE, canary_error_rate=0.20), seed=seed)
        for seed in range(50)
    ]
    assert [outcome.state for outcome in outcomes] == ["rolled-back"] * 50
    assert max(outcome.finished_at or 0.0 for outcome in outcomes) <= 30.0
