"""The controller's bookkeeping: one engine per canary route, events kept in
order until taken, operators' controls answered, and a rollout restored
from a snapshot at the same step, with no step repeated or skipped."""

from __future__ import annotations

from typing import Any

import pytest

from canary_node.rollouts import Rollouts
from meshgate.bus.messages import VersionMetrics
from meshgate.gateway.config import GatewayConfig
from meshgate.gateway.config_file import gateway_config_from_mapping
from meshgate.resilience.clock import ManualClock

WALL = 1_700_000_000.0


def canary_route(name: str, **promotion: Any) -> dict[str, Any]:
    return {
        "name": name,
        "path": f"/api/{name}/**",
        "service_name": name,
        "canary": {
            "stable": {"version": "1.0.0"},
            "canary": {"version": "2.0.0", "weight": 10},
            "promotion": {
                "step_interval": "5s",
                "min_requests": 10,
                "steps": [25, 50, 100],
                **promotion,
            },
        },
    }


def config(*routes: dict[str, Any]) -> GatewayConfig:
    return gateway_config_from_mapping({"routes": list(routes)}, source="test")


def healthy(rollouts: Rollouts, route: str = "orders", requests: int = 20) -> None:
    rollouts.record(
        route,
        {"1.0.0": VersionMetrics(requests=requests), "2.0.0": VersionMetrics(requests=requests)},
    )


def failing(rollouts: Rollouts, route: str = "orders") -> None:
    rollouts.record(
        route,
        {"1.0.0": VersionMetrics(requests=100), "2.0.0": VersionMetrics(requests=40, errors=30)},
    )


def test_there_is_one_engine_per_route_with_a_canary() -> None:
    plain = {"name": "users", "path": "/api/users/**", "upstreams": ["127.0.0.1:9"]}
    rollouts = Rollouts.from_config(
        config(canary_route("orders"), plain, canary_route("pay")), clock=ManualClock()
    )
    assert rollouts.routes == ("orders", "pay")
    assert rollouts.engine("orders").route == "orders"


def test_a_healthy_canary_steps_once_per_step_interval() -> None:
    clock = ManualClock()
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=clock)
    weights = []
    for _ in range(4):
        clock.advance(5)
        healthy(rollouts)
        rollouts.evaluate()
        weights += [(c.event, c.canary_weight) for c in rollouts.take_changes()]
    assert weights == [
        ("canary:step", 25.0),
        ("canary:step", 50.0),
        ("canary:step", 100.0),
        ("canary:promote", 100.0),
    ]


def test_nothing_steps_before_the_step_interval_however_healthy() -> None:
    clock = ManualClock()
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=clock)
    clock.advance(4.9)
    healthy(rollouts, requests=1000)
    assert rollouts.evaluate() == {"orders": "hold"}
    assert rollouts.take_changes() == []


def test_a_failing_canary_is_rolled_back_at_once() -> None:
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    failing(rollouts)
    assert rollouts.evaluate() == {"orders": "rollback"}
    [change] = rollouts.take_changes()
    assert (change.event, change.state, change.canary_weight) == (
        "canary:rollback",
        "rolled-back",
        0.0,
    )
    assert change.stats.canary.errors == 30


def test_each_route_is_judged_on_its_own_traffic() -> None:
    clock = ManualClock()
    rollouts = Rollouts.from_config(
        config(canary_route("orders"), canary_route("pay")), clock=clock
    )
    clock.advance(5)
    healthy(rollouts, "orders")
    failing(rollouts, "pay")
    assert rollouts.evaluate() == {"orders": "promote", "pay": "rollback"}
    assert [(c.route, c.event) for c in rollouts.take_changes()] == [
        ("orders", "canary:step"),
        ("pay", "canary:rollback"),
    ]


def test_finished_and_paused_rollouts_are_not_evaluated() -> None:
    rollouts = Rollouts.from_config(
        config(canary_route("orders"), canary_route("pay")), clock=ManualClock()
    )
    rollouts.control("orders", "pause")
    rollouts.control("pay", "promote")
    assert rollouts.evaluate() == {}


def test_changes_are_kept_in_order_until_taken() -> None:
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    rollouts.control("orders", "pause")
    rollouts.control("orders", "resume")
    rollouts.control("orders", "rollback")
    assert [c.event for c in rollouts.take_changes()] == [
        "canary:pause",
        "canary:resume",
        "canary:rollback",
    ]
    assert rollouts.take_changes() == []


def test_control_answers_with_the_rollout_as_it_stands_after_the_action() -> None:
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    reply = rollouts.control("orders", "pause")
    assert reply.ok
    assert reply.changed
    assert (reply.state, reply.canary_weight, reply.stable_weight, reply.step) == (
        "paused",
        10.0,
        90.0,
        -1,
    )


def test_repeating_an_action_is_ok_and_says_nothing_changed() -> None:
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    rollouts.control("orders", "pause")
    rollouts.take_changes()
    reply = rollouts.control("orders", "pause")
    assert reply.ok
    assert reply.changed is False
    assert reply.state == "paused"
    assert rollouts.take_changes() == []


def test_a_route_without_a_canary_is_not_found_and_the_reply_names_the_canary_routes() -> None:
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    reply = rollouts.control("users", "promote")
    assert not reply.ok
    assert reply.code == "not_found"
    assert reply.error is not None
    assert "'orders'" in reply.error


def test_a_finished_rollout_refuses_to_be_undone() -> None:
    rollouts = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    rollouts.control("orders", "rollback")
    reply = rollouts.control("orders", "promote")
    assert not reply.ok
    assert reply.code == "invalid"
    assert reply.state == "rolled-back"
    assert reply.error is not None
    assert "already rolled-back" in reply.error


def test_a_restored_rollout_takes_the_next_step_without_repeating_or_skipping_one() -> None:
    # The old leader steps to 25% (step 0) at wall time WALL + 5 ...
    old_clock = ManualClock()
    old = Rollouts.from_config(config(canary_route("orders")), clock=old_clock)
    old_clock.advance(5)
    healthy(old)
    old.evaluate()
    snapshot = old.snapshot("orders", wall_now=WALL + 5)
    assert (snapshot.step, snapshot.canary_weight) == (0, 25.0)
    # ... and dies; a new leader restores two seconds later, with a clock of its own.
    new_clock = ManualClock(1000.0)
    new = Rollouts.from_config(config(canary_route("orders")), clock=new_clock)
    new.restore(snapshot, wall_now=WALL + 7)
    assert new.status("orders").current_step == 0
    assert new.status("orders").canary_weight == 25.0
    assert new.take_changes() == []  # restoring announces nothing
    # The next step is due step_interval after the OLD leader's last one: 3 s from now.
    new_clock.advance(2.9)
    healthy(new)
    assert new.evaluate() == {"orders": "hold"}
    new_clock.advance(0.1)
    new.evaluate()
    assert [(c.step, c.canary_weight) for c in new.take_changes()] == [(1, 50.0)]


def test_a_restored_pause_stays_paused() -> None:
    old = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    old.control("orders", "pause")
    new = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    new.restore(old.snapshot("orders", wall_now=WALL), wall_now=WALL + 60)
    healthy(new, requests=1000)
    assert new.evaluate() == {}
    assert new.status("orders").state == "paused"


def test_a_snapshot_of_another_rollout_is_refused() -> None:
    old = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    snapshot = old.snapshot("orders", wall_now=WALL)
    other = canary_route("orders")
    other["canary"]["canary"]["version"] = "3.0.0"
    new = Rollouts.from_config(config(other), clock=ManualClock())
    with pytest.raises(ValueError, match="does not belong"):
        new.restore(snapshot, wall_now=WALL)


def test_a_snapshot_of_an_unknown_route_is_refused() -> None:
    old = Rollouts.from_config(config(canary_route("orders")), clock=ManualClock())
    new = Rollouts.from_config(config(canary_route("pay")), clock=ManualClock())
    with pytest.raises(ValueError, match="no canary"):
        new.restore(old.snapshot("orders", wall_now=WALL), wall_now=WALL)
