"""A replica's engine follows the controller's broadcasts, and the replica's
own event handlers hear of each change."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_node.canary_follower import CanaryFollower, ForeignRolloutError, follow
from meshgate.bus.messages import CanaryEvent, CanaryEventKind, CanaryState
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.gateway.canary_engine import CanaryEngine
from meshgate.gateway.config_file import gateway_config_from_mapping
from meshgate.gateway.server import GatewayServer

pytestmark = pytest.mark.anyio

CANARY = {
    "stable": {"version": "1.0.0"},
    "canary": {"version": "2.0.0", "weight": 10},
    "promotion": {"steps": [25, 50, 100]},
}


def message(
    kind: CanaryEventKind = "step",
    state: CanaryState = "active",
    weight: float = 25.0,
    step: int = 0,
    canary_version: str = "2.0.0",
) -> CanaryEvent:
    return CanaryEvent(
        route="orders",
        kind=kind,
        state=state,
        stable_version="1.0.0",
        canary_version=canary_version,
        stable_weight=100.0 - weight,
        canary_weight=weight,
        step=step,
        reason="healthy",
        at=0.0,
    )


def test_an_engine_takes_the_controllers_weight_state_and_step() -> None:
    engine = CanaryEngine(CANARY, route="orders")
    assert follow(engine, message(weight=50.0, step=1)) == "canary:step"
    assert (engine.canary_weight, engine.state, engine.current_step) == (50.0, "active", 1)
    assert follow(engine, message(kind="pause", state="paused", weight=50.0, step=1)) == (
        "canary:pause"
    )
    assert follow(engine, message(kind="promote", state="promoted", weight=100.0, step=2)) == (
        "canary:promote"
    )
    assert engine.choose_for(None, rand=0.99) == "canary"


def test_a_weights_reminder_that_changes_nothing_is_silent() -> None:
    engine = CanaryEngine(CANARY, route="orders")
    follow(engine, message(weight=25.0, step=0))
    assert follow(engine, message(kind="weights", weight=25.0, step=0)) is None


def test_a_replica_that_missed_events_catches_up_from_the_weights_reminder() -> None:
    engine = CanaryEngine(CANARY, route="orders")
    assert follow(engine, message(kind="weights", weight=50.0, step=1)) == "canary:step"
    assert engine.canary_weight == 50.0


def test_an_event_of_another_rollout_is_refused() -> None:
    engine = CanaryEngine(CANARY, route="orders")
    with pytest.raises(ForeignRolloutError, match=r"3\.0\.0"):
        follow(engine, message(canary_version="3.0.0"))
    assert engine.canary_weight == 10.0


def gateway() -> GatewayServer:
    config = gateway_config_from_mapping(
        {
            "routes": [
                {
                    "name": "orders",
                    "path": "/api/orders/**",
                    "service_name": "orders",
                    "canary": CANARY,
                }
            ]
        },
        source="test",
    )
    return GatewayServer(config, MemoryRegistryBackend())


async def test_the_gateways_handlers_hear_of_a_change_made_by_the_controller() -> None:
    server = gateway()
    heard: list[dict[str, Any]] = []
    server.on("canary:promote", heard.append)
    follower = CanaryFollower(server)
    await follower.on_event(message(kind="promote", state="promoted", weight=100.0, step=2))
    await follower.on_event(message(kind="weights", state="promoted", weight=100.0, step=2))
    assert len(heard) == 1
    assert heard[0]["route"] == "orders"
    assert heard[0]["canary_weight"] == 100.0
    assert server.canaries()["orders"].state == "promoted"


async def test_events_for_unknown_routes_and_foreign_rollouts_change_nothing() -> None:
    server = gateway()
    follower = CanaryFollower(server)
    await follower.on_event(
        CanaryEvent(
            route="users",
            kind="step",
            state="active",
            stable_version="1",
            canary_version="2",
            stable_weight=50.0,
            canary_weight=50.0,
            step=1,
            at=0.0,
        )
    )
    await follower.on_event(message(canary_version="3.0.0", weight=50.0, step=1))
    assert server.canaries()["orders"].canary_weight == 10.0
