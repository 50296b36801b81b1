"""Which replica probes, and what a replica does with a peer's breaker state."""

from __future__ import annotations

import pytest

from gateway_node.circuit_protocol import PeerMove, peer_move, probing_replica
from meshgate.resilience.breaker_core import BreakerSnapshot, CircuitState


def snapshot(state: CircuitState, generation: int) -> BreakerSnapshot:
    deadline = 1000.0 if state is CircuitState.OPEN else None
    return BreakerSnapshot(name="r", state=state, generation=generation, reset_deadline=deadline)


OPEN, CLOSED, HALF_OPEN = CircuitState.OPEN, CircuitState.CLOSED, CircuitState.HALF_OPEN


def test_every_replica_picks_the_same_prober_whatever_order_it_lists_them_in() -> None:
    replicas = ["gw-a", "gw-b", "gw-c", "gw-d"]
    for generation in range(50):
        chosen = probing_replica("payment", generation, replicas)
        assert chosen in replicas
        assert probing_replica("payment", generation, reversed(replicas)) == chosen


def test_probing_turns_go_round_the_replicas() -> None:
    replicas = ["gw-a", "gw-b", "gw-c"]
    chosen = {probing_replica("payment", generation, replicas) for generation in range(60)}
    assert chosen == set(replicas)


def test_a_replica_leaving_moves_only_its_own_probes() -> None:
    before = {g: probing_replica("payment", g, ["gw-a", "gw-b", "gw-c"]) for g in range(100)}
    after = {g: probing_replica("payment", g, ["gw-a", "gw-b"]) for g in range(100)}
    assert all(after[g] == before[g] for g in range(100) if before[g] != "gw-c")


def test_a_lone_replica_probes_and_nobody_is_refused() -> None:
    assert probing_replica("payment", 7, ["gw-a"]) == "gw-a"
    with pytest.raises(ValueError, match="empty"):
        probing_replica("payment", 7, [])


def test_half_open_is_never_adopted_an_open_replica_waits_for_the_verdict() -> None:
    assert peer_move(snapshot(OPEN, 1), snapshot(HALF_OPEN, 2)) is PeerMove.WAIT_FOR_PROBE
    assert peer_move(snapshot(OPEN, 2), snapshot(HALF_OPEN, 2)) is PeerMove.IGNORE
    assert peer_move(snapshot(CLOSED, 0), snapshot(HALF_OPEN, 2)) is PeerMove.IGNORE
    assert peer_move(snapshot(HALF_OPEN, 2), snapshot(HALF_OPEN, 2)) is PeerMove.IGNORE


def test_other_states_go_to_the_breakers_own_ordering() -> None:
    for state in (OPEN, CLOSED, CircuitState.FORCED_OPEN, CircuitState.DISABLED):
        assert peer_move(snapshot(CLOSED, 0), snapshot(state, 1)) is PeerMove.ADOPT
