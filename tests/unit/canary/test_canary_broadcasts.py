"""What the leader broadcasts: an engine event as a `CanaryEvent` of the same
kind, and the periodic current-weights reminder."""

from __future__ import annotations

import pytest

from canary_node.canary_broadcasts import event_message, weights_message
from meshgate.bus.codec import decode, encode
from meshgate.bus.messages import CanaryEvent, Event
from meshgate.gateway.canary_engine import CanaryEngine
from meshgate.gateway.canary_status import CanaryEventInfo
from meshgate.resilience.clock import ManualClock

AT = 1_700_000_000.0


def engine() -> tuple[CanaryEngine, list[CanaryEventInfo]]:
    seen: list[CanaryEventInfo] = []
    canary = CanaryEngine(
        {"stable": {"version": "1.0.0"}, "canary": {"version": "2.0.0", "weight": 10}},
        clock=ManualClock(),
        route="orders",
    )
    for name in ("canary:pause", "canary:resume", "canary:promote", "canary:rollback"):
        canary.on(name, seen.append)
    return canary, seen


@pytest.mark.parametrize(
    ("action", "kind"),
    [("pause", "pause"), ("promote", "promote"), ("rollback", "rollback")],
)
def test_an_engine_event_becomes_a_canary_event_of_the_same_kind(action: str, kind: str) -> None:
    canary, seen = engine()
    getattr(canary, action)()
    message = event_message(seen[-1], at=AT)
    assert message.kind == kind
    assert message.route == "orders"
    assert (message.stable_version, message.canary_version) == ("1.0.0", "2.0.0")
    assert message.canary_weight + message.stable_weight == 100.0
    assert message.state == canary.state
    assert message.at == AT
    assert set(message.stats) == {"stable", "canary"}


def test_the_weights_reminder_carries_the_rollout_as_it_stands() -> None:
    canary, _ = engine()
    canary.pause()
    message = weights_message(canary.get_status(), at=AT)
    assert (message.kind, message.state, message.canary_weight, message.step) == (
        "weights",
        "paused",
        10.0,
        0,
    )


def test_broadcasts_decode_as_events_on_the_events_wildcard() -> None:
    canary, _ = engine()
    message = weights_message(canary.get_status(), at=AT)
    decoded: object = decode(encode(message), Event)
    assert isinstance(decoded, CanaryEvent)
    assert decoded == message
