"""Rule 10 of the breaker: a probe hold keeps an OPEN breaker rejecting past
its deadline, so that one replica probes for a cluster and the rest wait."""

from __future__ import annotations

from meshgate.resilience.breaker_core import (
    PROBE,
    REJECT,
    BreakerConfig,
    BreakerCore,
    BreakerSnapshot,
    CircuitState,
)


def opened_at(now: float, reset_timeout: float = 10.0) -> BreakerCore:
    core = BreakerCore(BreakerConfig(name="r", failure_threshold=1, reset_timeout=reset_timeout))
    core.on_failure(0.0, now, core.epoch)
    assert core.state is CircuitState.OPEN
    return core


def test_a_held_breaker_rejects_past_its_deadline_until_the_hold_ends() -> None:
    core = opened_at(0.0)
    core.defer_probe(15.0)
    assert core.allow(10.0) is REJECT
    assert core.tick(14.999) is CircuitState.OPEN
    assert core.retry_after(10.0) == 5.0
    assert core.allow(15.0) is PROBE


def test_the_snapshot_keeps_the_shared_deadline_while_held() -> None:
    core = opened_at(0.0)
    core.defer_probe(15.0)
    assert core.snapshot(now=0.0, wall_now=1000.0).reset_deadline == 1010.0


def test_a_hold_only_extends() -> None:
    core = opened_at(0.0)
    core.defer_probe(15.0)
    core.defer_probe(12.0)
    assert core.allow(14.0) is REJECT


def test_a_hold_shorter_than_the_deadline_changes_nothing() -> None:
    core = opened_at(0.0)
    core.defer_probe(5.0)
    assert core.allow(9.0) is REJECT
    assert core.allow(10.0) is PROBE


def test_a_hold_outside_open_is_ignored() -> None:
    core = BreakerCore(BreakerConfig(name="r", failure_threshold=1))
    core.defer_probe(100.0)
    assert core.probe_hold == float("-inf")


def test_any_move_clears_the_hold() -> None:
    core = opened_at(0.0)
    core.defer_probe(50.0)
    adopted = core.adopt(
        BreakerSnapshot(name="r", state=CircuitState.CLOSED, generation=2), now=1.0, wall_now=1.0
    )
    assert adopted
    core.on_failure(0.0, 2.0, core.epoch)  # opens again, deadline 12.0
    assert core.allow(12.0) is PROBE
