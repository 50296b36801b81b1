"""`NatsKvRegistryBackend`: registrations in a JetStream KV bucket, shared by
any number of registry nodes and kept across their restarts.

Layout. One key per instance, ``<service>.<instance id>`` (each part passed
through `encode_token`, so any name fits in one token); its value is a JSON
`_Record`: the instance, the lease length `ttl`, and `expires_at`, the lease
deadline by the writer's clock. Claim keys (below) have four tokens, so the
filters ``<service>.*`` and ``*.*`` never mistake one for an instance.

Leases. Every write of an instance key carries a per-key TTL (``Nats-TTL``),
so the server removes an instance by itself when nobody renews it, even
when no registry node runs. The server counts whole seconds (TTL rounded up,
at least 1), so `expires_at` is what reads go by: an instance is live while
``clock() < expires_at``, exactly as in `MemoryRegistryBackend`, and the
server removes the key at most a second later. `heartbeat` and `set_status`
rewrite the key with compare-and-set on its revision (``last=``), so a
heartbeat racing a deregistration or an expiry cannot bring the instance
back. `set_status` keeps the deadline: it rewrites with the lease's
remaining time as TTL.

Expiry, reported exactly once however many registry nodes call `expire`:

1. Sweep. `expire` removes each key past `expires_at` with a purge that
   carries ``last=<revision>``. JetStream applies writes to a subject one at
   a time, so of several nodes sweeping at once exactly one purge succeeds,
   and only that node reports the instance. The keys and deadlines come from
   the backend's watch of the bucket (below), caught up to the bucket's
   latest write first, so a sweep costs one request and a pass over a dict,
   not a read of every key: at 10,000 instances that read took ~200 ms of
   CPU per sweep. A purge that loses to a newer write proves the watch had
   not seen it yet; the watch's next message brings the key back.
2. Server expiry. When the server's TTL fires first (every registry node
   was busy or down), it leaves a ``MaxAge`` marker in place of the key (the
   bucket is created with ``limit_marker_ttl``). Each backend watches the
   bucket and remembers the last value, revision and deadline of every key,
   because the marker carries none. For each marker, nodes race to create
   the claim key ``expired.<key>.<marker revision>`` with ``last=0`` (create
   only if absent); the revision is the same on every node, so exactly one
   create succeeds and only that node reports. Claims expire after
   `claim_ttl`.

The two paths cannot both fire for one lease: a successful sweep purge
removes the message whose TTL would have placed the marker, and once the
marker is there the sweep's compare-and-set fails. A node that starts while
a marker is still kept (`marker_ttl`) takes part in the race; if it wins
but never saw the key's value (the key expired while every node was down),
it logs ``registry.expired_record_missing`` instead of reporting.

Deletions (`deregister`, sweep) are purges with a TTL of `marker_ttl`, so
no tombstone outlives it. A restarted node reads everything back from the
bucket: the backend holds no state that matters beyond the watch cache.

Runs on asyncio only (nats-py), like `Bus`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from meshgate.bus.connection import (
    EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER,
    KV_OPERATION_HEADER,
    MARKER_HEADER,
    TTL_HEADER,
    Bus,
)
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.subjects import decode_token, encode_token
from meshgate.resilience.clock import Clock
from meshgate.resilience.validation import positive_number

log = structlog.get_logger(__name__)

_BUCKET_NAME = re.compile(r"[A-Za-z0-9_-]+")
_CLAIM_PREFIX = "expired"
_WRONG_LAST_SEQUENCE_CODES = (10071, 10164)
# Compare-and-set retries: each one re-reads, so only a key that changes
# this often between our read and our write exhausts them.
_CAS_ATTEMPTS = 16
# How long a read waits for the server to deliver what the bucket holds.
_SYNC_TIMEOUT = 5.0
# Snapshot reads use short-lived consumers; the server drops them this soon
# after we stop listening instead of nats-py's default five minutes.
_SNAPSHOT_CONSUMER_TTL = 2.0


class _Record(msgspec.Struct, frozen=True, kw_only=True):
    """The value of an instance key."""

    instance: ServiceInstance
    ttl: float
    expires_at: float


class _Deadline(msgspec.Struct):
    """The one field of a `_Record` that the watch decodes from every write."""

    expires_at: float


@dataclass(frozen=True, slots=True)
class _Watched:
    """What the watch last saw of one instance key."""

    revision: int
    expires_at: float
    value: bytes


@dataclass(frozen=True, slots=True)
class _Stored:
    """One instance key as read from the bucket."""

    key: str
    revision: int
    record: _Record


class NatsKvRegistryBackend:
    """Registrations in the JetStream KV bucket `bucket`, created when
    missing; see the module docstring for keys, leases and expiry.

    `bus` stays the caller's: `aclose` stops this backend's watch, not the
    connection. `clock` (wall clock by default) stamps `registered_at`,
    `last_heartbeat` and lease deadlines; keep registry nodes' clocks in
    sync. `marker_ttl` is how long the server keeps an expiry marker (and
    this backend its purge markers); `claim_ttl` how long an expiry claim
    lives, which must outlast the markers. `node_id` is written into the
    claims this backend wins, for whoever inspects the bucket.

    >>> async def main(url: str) -> None:
    ...     async with await Bus.connect(url) as bus:
    ...         backend = NatsKvRegistryBackend(bus)
    ...         inst = ServiceInstance(id="user-1", name="user-service",
    ...                                host="10.0.0.5", port=3001)
    ...         await backend.register(inst, ttl=15)
    ...         print([i.address for i in await backend.get_instances("user-service")])
    ...         await backend.aclose()
    """

    def __init__(
        self,
        bus: Bus,
        *,
        bucket: str = "mesh_instances",
        marker_ttl: float = 600.0,
        claim_ttl: float | None = None,
        node_id: str = "registry",
        clock: Clock = time.time,
    ) -> None:
        if not _BUCKET_NAME.fullmatch(bucket):
            raise ValueError(
                f"bucket={bucket!r} is not allowed: expected letters, digits, '-' and '_'"
            )
        self._bus = bus
        self._bucket = bucket
        # The server counts marker TTLs in whole seconds of at least 1.
        self._marker_ttl = max(1, math.ceil(positive_number("marker_ttl", marker_ttl)))
        claim = 2.0 * self._marker_ttl if claim_ttl is None else claim_ttl
        self._claim_ttl = positive_number("claim_ttl", claim)
        if self._claim_ttl < self._marker_ttl:
            raise ValueError(
                f"claim_ttl={claim_ttl!r} is not allowed: expected at least "
                f"marker_ttl ({self._marker_ttl}), or a node starting late could "
                "report an expiry a second time"
            )
        self._node_id = node_id
        self._clock = clock
        self._kv: KeyValue | None = None
        self._watch: JetStreamContext.PushSubscription | None = None
        # key -> what the watch last saw of it: the sweep's list of leases,
        # and the value to report when the server expires the key
        self._watched: dict[str, _Watched] = {}
        # the stream sequence of the last write the watch has handled
        self._watched_through = 0
        # (key, marker revision, last value if known), waiting for `expire`
        self._expired_markers: list[tuple[str, int, bytes | None]] = []

    @property
    def bucket(self) -> str:
        return self._bucket

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        ttl = positive_number("ttl", ttl)
        key = self._key(instance.name, instance.id)
        if key is None:
            field = "name" if not instance.name else "id"
            raise ValueError(f"instance.{field}={getattr(instance, field)!r}: must not be empty")
        await self._bucket_kv()
        now = float(self._clock())
        stored = msgspec.structs.replace(
            instance, registered_at=instance.registered_at or now, last_heartbeat=now
        )
        record = _Record(instance=stored, ttl=ttl, expires_at=now + ttl)
        await self._bus.kv_put(self._bucket, key, msgspec.json.encode(record), ttl=ttl)
        return stored

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        key = self._key(service, instance_id)
        if key is None:
            return None
        for _ in range(_CAS_ATTEMPTS):
            current = await self._read(key)
            if current is None:
                return None
            if await self._purge(key, current.revision):
                return current.record.instance
        raise RuntimeError(f"deregister of {key!r} kept losing to concurrent writes")

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        key = self._key(service, instance_id)
        if key is None:
            return None
        for _ in range(_CAS_ATTEMPTS):
            now = float(self._clock())
            current = await self._read(key)
            if current is None or now >= current.record.expires_at:
                # An expired lease stays for `expire` to report.
                return None
            record = current.record
            renewed = _Record(
                instance=msgspec.structs.replace(record.instance, last_heartbeat=now),
                ttl=record.ttl,
                expires_at=now + record.ttl,
            )
            if await self._replace(key, current.revision, renewed, ttl=record.ttl):
                return renewed.instance
        raise RuntimeError(f"heartbeat of {key!r} kept losing to concurrent writes")

    async def set_status(
        self, service: str, instance_id: str, status: InstanceStatus
    ) -> ServiceInstance | None:
        key = self._key(service, instance_id)
        if key is None:
            return None
        status = InstanceStatus(status)
        for _ in range(_CAS_ATTEMPTS):
            now = float(self._clock())
            current = await self._read(key)
            if current is None or now >= current.record.expires_at:
                return None
            record = current.record
            updated = msgspec.structs.replace(
                record, instance=msgspec.structs.replace(record.instance, status=status)
            )
            # The remaining time, so that a probe result does not renew the lease.
            remaining = record.expires_at - now
            if await self._replace(key, current.revision, updated, ttl=remaining):
                return updated.instance
        raise RuntimeError(f"set_status of {key!r} kept losing to concurrent writes")

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        """Live instances of `service`, ordered by id."""
        if not service:
            return []
        now = float(self._clock())
        stored = await self._snapshot(f"{encode_token(service)}.*")
        live = [s.record.instance for s in stored if now < s.record.expires_at]
        return sorted(live, key=lambda instance: instance.id)

    async def get_services(self) -> list[str]:
        """Services with a live instance, ordered by name."""
        now = float(self._clock())
        stored = await self._snapshot("*.*")
        return sorted({s.record.instance.name for s in stored if now < s.record.expires_at})

    async def expire(self) -> list[ServiceInstance]:
        """Remove and return instances whose lease ran out, oldest deadline
        first: those past their deadline that this node purged, and those
        the server expired whose claim this node won. Each expired instance
        is returned by exactly one of the backends sharing the bucket."""
        await self._start_watch()
        await self._catch_up()
        expired: list[_Record] = []
        now = float(self._clock())
        due = [(key, seen) for key, seen in self._watched.items() if now >= seen.expires_at]
        for key, seen in due:
            purged = await self._purge(key, seen.revision)
            if self._watched.get(key) is seen:
                # Purged: gone. Not purged: a newer write, which the watch brings.
                del self._watched[key]
            record = _decode_record(seen.value, key) if purged else None
            if record is not None:
                expired.append(record)
        markers, self._expired_markers = self._expired_markers, []
        for index, (key, revision, value) in enumerate(markers):
            try:
                won = await self._claim(key, revision)
            except BaseException:
                # Keep the markers not yet claimed for the next call.
                self._expired_markers[:0] = markers[index:]
                raise
            if not won:
                continue
            record = None if value is None else _decode_record(value, key)
            if record is None:
                service, instance_id = _split_key(key)
                log.warning(
                    "registry.expired_record_missing",
                    bucket=self._bucket,
                    service=service,
                    instance_id=instance_id,
                )
                continue
            expired.append(record)
        expired.sort(key=lambda r: (r.expires_at, r.instance.name, r.instance.id))
        return [record.instance for record in expired]

    async def aclose(self) -> None:
        """Stop watching the bucket; the bus stays open for its owner."""
        watch, self._watch = self._watch, None
        if watch is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await watch.unsubscribe()
                except nats.errors.Error as exc:
                    # a closed connection has already dropped the subscription
                    log.debug("registry.watch_stop_failed", error=repr(exc))

    # --- bucket access ---------------------------------------------------------

    async def _bucket_kv(self) -> KeyValue:
        if self._kv is None:
            kv = await self._bus.key_value(self._bucket, limit_marker_ttl=self._marker_ttl)
            status = await kv.status()
            if not status.marker_ttl:
                # Created elsewhere without markers: server expiries go
                # unseen, and only the sweep reports (while a node runs).
                log.warning("registry.bucket_without_expiry_markers", bucket=self._bucket)
            self._kv = kv
        return self._kv

    def _key(self, service: str, instance_id: str) -> str | None:
        if not service or not instance_id:
            return None
        return f"{encode_token(service)}.{encode_token(instance_id)}"

    async def _read(self, key: str) -> _Stored | None:
        await self._bucket_kv()
        entry = await self._bus.kv_get(self._bucket, key)
        if entry is None or entry.value is None or entry.revision is None:
            return None
        record = _decode_record(entry.value, key)
        return None if record is None else _Stored(key, entry.revision, record)

    async def _snapshot(self, pattern: str) -> list[_Stored]:
        """The current value of every instance key matching `pattern`."""
        latest: dict[str, _Stored] = {}

        async def on_message(msg: Msg) -> None:
            key = self._key_of(msg)
            record = None if _is_removal(msg) else _decode_record(msg.data, key)
            if record is None:
                latest.pop(key, None)
            else:
                latest[key] = _Stored(key, msg.metadata.sequence.stream, record)

        subscription = await self._subscribe_from_latest(
            pattern, on_message, inactive_threshold=_SNAPSHOT_CONSUMER_TTL
        )
        with anyio.CancelScope(shield=True):
            await subscription.unsubscribe()
        return list(latest.values())

    async def _subscribe_from_latest(
        self,
        pattern: str,
        handler: Callable[[Msg], Awaitable[None]],
        *,
        inactive_threshold: float | None = None,
    ) -> JetStreamContext.PushSubscription:
        """Run `handler` on the latest message of every key matching
        `pattern`, then on every later one; returns once the latest ones
        have all been handled; TimeoutError if that takes `_SYNC_TIMEOUT`.

        nats-py's ``KeyValue.watch`` can report "caught up" before it has
        handed over what the server already sent, so a snapshot read through
        it may miss keys; this waits for the message that says nothing is
        pending instead."""
        await self._bucket_kv()
        synced = anyio.Event()

        async def on_message(msg: Msg) -> None:
            await handler(msg)
            if msg.metadata.num_pending == 0:
                synced.set()

        subscription = await self._bus.jetstream.subscribe(
            f"$KV.{self._bucket}.{pattern}",
            stream=f"KV_{self._bucket}",
            cb=on_message,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=inactive_threshold,
        )
        try:
            info = await subscription.consumer_info()
            sent = 0 if info.delivered is None else info.delivered.consumer_seq
            # Nothing sent and nothing pending: no key matched when it was created.
            if info.num_pending == 0 and not sent:
                synced.set()
            with anyio.fail_after(_SYNC_TIMEOUT):
                await synced.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await subscription.unsubscribe()
            raise
        return subscription

    async def _replace(self, key: str, revision: int, record: _Record, *, ttl: float) -> bool:
        """Write `record` if `key` is still at `revision`; False if it moved on."""
        try:
            await self._bus.kv_put(
                self._bucket, key, msgspec.json.encode(record), ttl=ttl, last=revision
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def _purge(self, key: str, revision: int) -> bool:
        """Remove `key` if it is still at `revision`; False if it moved on.

        A purge (not a delete) drops every earlier message of the key, the
        one carrying the lease TTL included, so the server will not place
        an expiry marker for it later; its own TTL stops it lingering."""
        headers = {
            KV_OPERATION_HEADER: "PURGE",
            "Nats-Rollup": "sub",
            EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER: str(revision),
            TTL_HEADER: f"{self._marker_ttl}s",
        }
        try:
            await self._bus.jetstream.publish(f"$KV.{self._bucket}.{key}", b"", headers=headers)
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE_CODES:
                return False
            raise
        return True

    async def _claim(self, key: str, revision: int) -> bool:
        """Whether this node won the right to report the server's expiry of
        `key` at `revision`: only the first create of the claim key succeeds."""
        claim = f"{_CLAIM_PREFIX}.{key}.{revision}"
        try:
            await self._bus.kv_put(
                self._bucket, claim, self._node_id.encode(), ttl=self._claim_ttl, last=0
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    # --- the watch ---------------------------------------------------------------

    async def _start_watch(self) -> None:
        """Watch instance keys from their current values on, once."""
        if self._watch is None:
            self._watch = await self._subscribe_from_latest("*.*", self._on_watched)

    async def _catch_up(self) -> None:
        """Return once the watch has handled every instance-key write the
        bucket held when this was called, so that a sweep right after a
        write sees it; TimeoutError if that takes `_SYNC_TIMEOUT`."""
        watch = self._watch
        assert watch is not None, "the watch starts before a sweep"
        with anyio.fail_after(_SYNC_TIMEOUT):
            while True:
                info = await watch.consumer_info()
                sent = 0 if info.delivered is None else info.delivered.stream_seq or 0
                if not info.num_pending and self._watched_through >= sent:
                    return
                await anyio.sleep(0.005)  # messages on their way to the callback

    async def _on_watched(self, msg: Msg) -> None:
        # Runs in nats-py's delivery task, one message at a time, in order.
        key = self._key_of(msg)
        revision = msg.metadata.sequence.stream
        if (msg.headers or {}).get(MARKER_HEADER) == "MaxAge":
            seen = self._watched.pop(key, None)
            self._expired_markers.append((key, revision, None if seen is None else seen.value))
        elif _is_removal(msg):
            self._watched.pop(key, None)
        else:
            try:
                deadline = msgspec.json.decode(msg.data, type=_Deadline).expires_at
            except msgspec.DecodeError:
                # Not ours: never swept, as a full read skipped it too.
                deadline = math.inf
            self._watched[key] = _Watched(revision, deadline, msg.data)
        self._watched_through = max(self._watched_through, revision)

    def _key_of(self, msg: Msg) -> str:
        return msg.subject.removeprefix(f"$KV.{self._bucket}.")


def _is_removal(msg: Msg) -> bool:
    """Whether `msg` marks its key as gone: a delete, a purge, or a marker
    the server left (TTL expiry, removal)."""
    headers = msg.headers or {}
    return MARKER_HEADER in headers or headers.get(KV_OPERATION_HEADER) in ("DEL", "PURGE")


def _decode_record(value: bytes, key: str) -> _Record | None:
    try:
        return msgspec.json.decode(value, type=_Record)
    except msgspec.DecodeError as exc:
        # Something else wrote into our bucket; skipping it keeps the node up.
        log.warning("registry.record_undecodable", key=key, reason=str(exc))
        return None


def _split_key(key: str) -> tuple[str, str]:
    service, _, instance_id = key.partition(".")
    try:
        return decode_token(service), decode_token(instance_id)
    except ValueError:
        return service, instance_id
