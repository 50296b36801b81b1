"""`RolloutStore`: each rollout's `CanarySnapshot` in the canary bucket, one
key per route (``rollout.<route token>``), so that a standby that becomes
leader resumes every rollout at its persisted step.

Writes are compare-and-set on the revision this store last read or wrote.
A leader loads every key at the start of its term, so a write that meets
another revision proves that some other node wrote meanwhile: this node is
no longer the only leader, and `save` raises `RolloutConflictError` instead
of overwriting the newer state.
"""

from __future__ import annotations

import msgspec
import nats.js.errors
import structlog

from canary_node.kv_errors import kv_failures_as_bus_errors
from meshgate.bus.connection import Bus
from meshgate.bus.subjects import encode_token
from meshgate.gateway.canary_status import CanarySnapshot

log = structlog.get_logger("meshgate.canary")

KEY_PREFIX = "rollout"


def rollout_key(route: str) -> str:
    """The KV key of `route`'s rollout.

    >>> rollout_key("/api/orders/**")
    'rollout./api/orders/=2A=2A'
    """
    return f"{KEY_PREFIX}.{encode_token(route)}"


class RolloutConflictError(Exception):
    """Another node wrote a rollout's state since this store last read it."""


class RolloutStore:
    """Rollout snapshots in KV bucket `bucket` (created when missing).

    >>> async def resume(bus: Bus, route: str) -> CanarySnapshot | None:
    ...     store = RolloutStore(bus, "MESH_CANARY")
    ...     await store.open()
    ...     return await store.load(route)
    """

    def __init__(self, bus: Bus, bucket: str) -> None:
        self._bus = bus
        self._bucket = bucket
        # route -> revision of its key as last read or written (0: no entry)
        self._revisions: dict[str, int] = {}

    async def open(self) -> None:
        with kv_failures_as_bus_errors(f"bucket {self._bucket}"):
            await self._bus.key_value(self._bucket)

    async def load(self, route: str) -> CanarySnapshot | None:
        """`route`'s persisted snapshot, or None when there is none (or it
        does not decode: it is logged and will be overwritten)."""
        key = rollout_key(route)
        with kv_failures_as_bus_errors(f"rollout {self._bucket}.{key}"):
            entry = await self._bus.kv_get(self._bucket, key)
            revision = entry.revision if entry is not None else await self._revision_of(key)
        self._revisions[route] = revision or 0
        if entry is None or not entry.value:
            return None
        try:
            return msgspec.json.decode(entry.value, type=CanarySnapshot)
        except msgspec.DecodeError as exc:
            log.warning("canary.snapshot_unreadable", route=route, error=str(exc))
            return None

    async def save(self, snapshot: CanarySnapshot) -> None:
        """Persist `snapshot` if its key is as this store last saw it."""
        route = snapshot.route
        if route not in self._revisions:
            raise RolloutConflictError(f"rollout of {route!r} saved before it was loaded")
        key = rollout_key(route)
        with kv_failures_as_bus_errors(f"rollout {self._bucket}.{key}"):
            try:
                revision = await self._bus.kv_put(
                    self._bucket, key, msgspec.json.encode(snapshot), last=self._revisions[route]
                )
            except nats.js.errors.KeyWrongLastSequenceError:
                raise RolloutConflictError(
                    f"the rollout of {route!r} was written by another controller"
                ) from None
        self._revisions[route] = revision

    async def _revision_of(self, key: str) -> int | None:
        # `kv_get` hides delete markers, whose revision a write must still expect.
        try:
            msg = await self._bus.jetstream.get_msg(
                f"KV_{self._bucket}", subject=f"$KV.{self._bucket}.{key}"
            )
        except nats.js.errors.NotFoundError:
            return None
        return msg.seq


__all__ = ["KEY_PREFIX", "RolloutConflictError", "RolloutStore", "rollout_key"]
