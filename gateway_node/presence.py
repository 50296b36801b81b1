"""Presence: each replica says it is alive every `interval` seconds, and
knows the live set from what the others say.

`PeerTable` is the pure part: it keeps the last `Presence` of every replica
and when it was heard (the caller's monotonic `now`); a replica is live until
`ttl` seconds pass without word from it, or until it says it is leaving.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import structlog

from meshgate.bus.messages import Presence
from meshgate.bus.protocol import MessageBus

log = structlog.get_logger("meshgate.gateway")


class PeerTable:
    """The replicas heard from.

    >>> peers = PeerTable(ttl=6.0)
    >>> peers.heard(Presence(replica_id="gw-2", address="h:1", started_at=0.0), now=10.0)
    True
    >>> [p.replica_id for p in peers.live(now=15.0)], peers.live(now=16.0)
    (['gw-2'], [])
    """

    __slots__ = ("_last", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._last: dict[str, tuple[Presence, float]] = {}

    def heard(self, presence: Presence, now: float) -> bool:
        """Record `presence`; True when it changes the live set (a join or a leave)."""
        known = presence.replica_id in self._last and not self._expired(presence.replica_id, now)
        if presence.leaving:
            self._last.pop(presence.replica_id, None)
            return known
        self._last[presence.replica_id] = (presence, now)
        return not known

    def live(self, now: float) -> list[Presence]:
        """Replicas heard within `ttl`, by id."""
        return [
            presence
            for replica_id, (presence, _) in sorted(self._last.items())
            if not self._expired(replica_id, now)
        ]

    def _expired(self, replica_id: str, now: float) -> bool:
        return now - self._last[replica_id][1] >= self.ttl


async def announce_presence(
    bus: MessageBus,
    make: Callable[[bool], Presence],
    *,
    interval: float = 2.0,
) -> None:
    """Publish `make(False)` every `interval` seconds until cancelled, then
    `make(True)` (leaving), so that peers drop this replica at once."""
    try:
        while True:
            try:
                await bus.publish(bus.subjects.presence, make(False))
            except Exception as error:  # the bus may be away; keep serving
                log.warning("presence.publish_failed", error=repr(error))
            await anyio.sleep(interval)
    finally:
        with anyio.move_on_after(1.0, shield=True):
            try:
                await bus.publish(bus.subjects.presence, make(True))
            except Exception as error:
                log.warning("presence.leave_failed", error=repr(error))


async def watch_presence(
    bus: MessageBus, peers: PeerTable, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """Keep `peers` current from the presence broadcasts, until cancelled."""

    async def on_presence(presence: Presence) -> None:
        if peers.heard(presence, clock()):
            log.info(
                "presence.changed",
                replica=presence.replica_id,
                leaving=presence.leaving,
                live=[p.replica_id for p in peers.live(clock())],
            )

    subscription = await bus.subscribe(bus.subjects.presence, Presence, on_presence)
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await subscription.unsubscribe()
