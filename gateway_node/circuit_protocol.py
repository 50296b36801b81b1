"""The decisions of circuit sharing, without I/O: which replica probes an
open circuit for the cluster, and what a replica does with a peer's state.
`gateway_node.circuit_sync` states the whole protocol and does the I/O.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable

from meshgate.resilience.breaker_core import BreakerSnapshot, CircuitState


class PeerMove(enum.Enum):
    """What to do with a peer's breaker state."""

    ADOPT = "adopt"
    """Offer it to `BreakerCore.adopt`, which takes it if it is newer (rule 9)."""
    WAIT_FOR_PROBE = "wait-for-probe"
    """A peer is probing: keep rejecting, a while longer, for its verdict."""
    IGNORE = "ignore"


def peer_move(local: BreakerSnapshot, remote: BreakerSnapshot) -> PeerMove:
    """What a replica holding `local` does with a peer's `remote`.

    HALF_OPEN is never adopted: it means "I am probing", and a replica that
    took it would probe as well. A replica whose breaker is OPEN waits for the
    verdict instead; any other state ignores it (the verdict will come as a
    CLOSED or OPEN of a later generation).

    >>> def snap(state: str, generation: int, deadline: float | None = None) -> BreakerSnapshot:
    ...     return BreakerSnapshot(name="r", state=CircuitState(state),
    ...                            generation=generation, reset_deadline=deadline)
    >>> peer_move(snap("open", 3, 1000.0), snap("half-open", 4)).value
    'wait-for-probe'
    >>> peer_move(snap("closed", 2), snap("half-open", 4)).value
    'ignore'
    >>> peer_move(snap("open", 3, 1000.0), snap("closed", 5)).value
    'adopt'
    """
    if remote.state is CircuitState.HALF_OPEN:
        if local.state is CircuitState.OPEN and remote.generation > local.generation:
            return PeerMove.WAIT_FOR_PROBE
        return PeerMove.IGNORE
    return PeerMove.ADOPT


def probing_replica(route: str, generation: int, replicas: Iterable[str]) -> str:
    """The one replica of `replicas` that probes `route` once the circuit
    opened at `generation` reaches its deadline (rendezvous hashing: every
    replica that sees the same live set picks the same one, and a replica
    joining or leaving moves the choice for few circuits).

    >>> probing_replica("payment", 4, ["gw-a", "gw-b", "gw-c"])
    'gw-c'
    >>> probing_replica("payment", 4, ["gw-c", "gw-b", "gw-a"])
    'gw-c'
    """
    chosen = max(
        set(replicas),
        key=lambda replica: hashlib.blake2b(
            f"{route}\0{generation}\0{replica}".encode(), digest_size=8
        ).digest(),
        default=None,
    )
    if chosen is None:
        raise ValueError("replicas is empty: expected at least this replica")
    return chosen
