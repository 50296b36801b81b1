"""The knobs: a seeded, repeatable draw of failures, and checked updates."""

from __future__ import annotations

import msgspec
import pytest

from services.knobs import Knobs, KnobUpdate


def draws(knobs: Knobs, n: int) -> list[bool]:
    return [knobs.should_fail() for _ in range(n)]


def test_the_same_seed_fails_the_same_requests() -> None:
    assert draws(Knobs(error_rate=0.3, seed="order-1"), 50) == draws(
        Knobs(error_rate=0.3, seed="order-1"), 50
    )
    assert draws(Knobs(error_rate=0.3, seed="order-1"), 50) != draws(
        Knobs(error_rate=0.3, seed="order-2"), 50
    )


def test_the_share_of_failures_follows_the_rate() -> None:
    failed = sum(draws(Knobs(error_rate=0.2, seed=7), 10_000))
    assert 1_800 < failed < 2_200


def test_rates_zero_and_one_never_and_always_fail_without_drawing() -> None:
    knobs = Knobs(error_rate=0.0, seed=1)
    assert not any(draws(knobs, 100))
    knobs.apply(KnobUpdate(error_rate=1.0))
    assert all(draws(knobs, 100))
    # Nothing was drawn meanwhile, so a rate set now starts where a fresh one would.
    knobs.apply(KnobUpdate(error_rate=0.5))
    assert draws(knobs, 20) == draws(Knobs(error_rate=0.5, seed=1), 20)


def test_an_update_changes_only_the_knobs_it_names() -> None:
    knobs = Knobs(error_rate=0.1, latency=0.05, fail_health=False)
    knobs.apply(KnobUpdate(fail_health=True))
    assert knobs.as_json() == {"error_rate": 0.1, "latency_ms": 50.0, "fail_health": True}
    knobs.apply(KnobUpdate(latency_ms=0))
    assert knobs.latency == 0.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error_rate": 1.5}', "error_rate=1.5 is not allowed"),
        (b'{"latency_ms": -1}', "latency_ms=-1.0 is not allowed"),
        (b'{"fail_health": "yes"}', "Expected `bool`"),
        (b'{"error-rate": 0.5}', "unknown field `error-rate`"),
    ],
)
def test_a_bad_update_is_refused_naming_the_knob(body: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.json.decode(body, type=KnobUpdate)


def test_knobs_refuse_bad_starting_values() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Knobs(error_rate=-0.1)
    with pytest.raises(ValueError, match="latency"):
        Knobs(latency=float("inf"))
