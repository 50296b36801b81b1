"""`LeaseBucket`: the leader lease as one key of a JetStream KV bucket, with
the rules of `canary_node.leader_lease` (read those first).

Every write carries the per-key TTL (``Nats-TTL``) and the revision it
expects to replace (``Nats-Expected-Last-Subject-Sequence``): 0 to create
the key only if absent, the lease's own revision to renew it. A renewal
that meets another revision means the lease is gone: it expired, or a
standby took it after it expired. Stepping down writes a delete marker
expecting our revision, so it can never remove a successor's lease.

The bucket is created without expiry markers (``limit_marker_ttl``): an
expired lease then leaves the key with no entry at all, which a standby
claims with "create if absent".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import msgspec
import nats.js.errors
import structlog

from canary_node.kv_errors import kv_failures_as_bus_errors
from canary_node.leader_lease import HeldLease, LeaseKey, LeaseRecord, LeaseTerms, claim_revision
from meshgate.bus.connection import (
    EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER,
    KV_OPERATION_HEADER,
    MARKER_HEADER,
    Bus,
)
from meshgate.bus.errors import BusError
from meshgate.resilience.clock import Clock

log = structlog.get_logger("meshgate.canary")

LEADER_KEY = "leader"


class LeaseLostError(Exception):
    """The lease is no longer ours: it expired, or another node holds it."""


def new_term_id() -> str:
    """A term id no other acquisition will ever use."""
    return uuid.uuid4().hex


class LeaseBucket:
    """The lease key `key` of KV bucket `bucket`, claimed for `node_id`.

    `clock` (monotonic) stamps `HeldLease.sent_at`; `wall_clock` stamps the
    record's times, for people reading the bucket. Failures to reach the
    server raise `meshgate.bus.errors.BusError`.

    >>> async def lead_once(bus: Bus) -> None:
    ...     bucket = LeaseBucket(bus, bucket="MESH_CANARY", node_id="canary-a",
    ...                          terms=LeaseTerms.for_ttl(3.0))
    ...     await bucket.open()
    ...     lease = await bucket.try_acquire()
    ...     if lease is not None:
    ...         lease = await bucket.renew(lease)
    ...         await bucket.release(lease)
    """

    def __init__(
        self,
        bus: Bus,
        *,
        bucket: str,
        node_id: str,
        terms: LeaseTerms,
        key: str = LEADER_KEY,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        new_term: Callable[[], str] = new_term_id,
    ) -> None:
        self._bus = bus
        self._bucket = bucket
        self._key = key
        self._subject = f"$KV.{bucket}.{key}"
        self.node_id = node_id
        self.terms = terms
        self._clock = clock
        self._wall_clock = wall_clock
        self._new_term = new_term
        self._record: LeaseRecord | None = None
        self.seen_holder: str | None = None
        """Who held the lease when `try_acquire` last found it taken."""

    @property
    def bucket(self) -> str:
        return self._bucket

    async def open(self) -> None:
        """Create the bucket when it is missing (no-op otherwise)."""
        with kv_failures_as_bus_errors(f"bucket {self._bucket}"):
            await self._bus.key_value(self._bucket)

    async def read(self) -> LeaseKey | None:
        """The key's latest entry, or None when it has none (never written,
        or expired)."""
        with kv_failures_as_bus_errors(f"lease {self._bucket}.{self._key}"):
            try:
                msg = await self._bus.jetstream.get_msg(f"KV_{self._bucket}", subject=self._subject)
            except nats.js.errors.NotFoundError:
                return None
        revision = msg.seq
        assert revision is not None  # a stored message always has one
        headers = msg.headers or {}
        if headers.get(KV_OPERATION_HEADER) in ("DEL", "PURGE") or MARKER_HEADER in headers:
            return LeaseKey(revision, deleted=True)
        try:
            record = msgspec.json.decode(msg.data or b"", type=LeaseRecord)
        except msgspec.DecodeError as exc:
            # Still a live lease: only its TTL or its holder may end it.
            log.warning("canary.lease_unreadable", bucket=self._bucket, error=str(exc))
            return LeaseKey(revision, deleted=False)
        return LeaseKey(revision, deleted=False, record=record)

    async def try_acquire(self) -> HeldLease | None:
        """Claim the lease if nobody holds it; None when somebody does (or
        another standby claimed it first)."""
        key = await self.read()
        expected = claim_revision(key)
        if expected is None:
            self.seen_holder = None if key is None or key.record is None else key.record.holder
            return None
        now = self._wall_clock()
        record = LeaseRecord(
            holder=self.node_id,
            term=self._new_term(),
            acquired_at=now,
            renewed_at=now,
            ttl=self.terms.ttl,
        )
        sent_at = self._clock()
        revision = await self._write(record, expected)
        if revision is None:
            return None
        self._record = record
        return HeldLease(term=record.term, revision=revision, sent_at=sent_at)

    async def renew(self, lease: HeldLease) -> HeldLease:
        """Extend `lease` by a full TTL from now; `LeaseLostError` when it is
        not ours any more."""
        record = self._record
        if record is None or record.term != lease.term:
            raise LeaseLostError(f"term {lease.term} was not acquired by this bucket")
        record = msgspec.structs.replace(record, renewed_at=self._wall_clock())
        sent_at = self._clock()
        revision = await self._write(record, lease.revision)
        if revision is None:
            # Our previous renewal may have been stored although its ack never
            # came back; then the key is still ours, at a revision we missed.
            current = await self.read()
            if current is None or current.record is None or current.record.term != lease.term:
                holder = None if current is None or current.record is None else current.record
                raise LeaseLostError(
                    "the lease expired"
                    if holder is None
                    else f"{holder.holder} holds the lease (term {holder.term})"
                )
            revision = await self._write(record, current.revision)
            if revision is None:
                raise LeaseLostError("the lease changed hands while being renewed")
        self._record = record
        return HeldLease(term=lease.term, revision=revision, sent_at=sent_at)

    async def release(self, lease: HeldLease) -> bool:
        """Step down: delete the key if it still holds `lease`, so a standby
        takes over at its next poll instead of after the TTL. Returns whether
        it was deleted; failures are logged, not raised (the TTL ends the
        lease anyway)."""
        headers = {
            KV_OPERATION_HEADER: "DEL",
            EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER: str(lease.revision),
        }
        try:
            with kv_failures_as_bus_errors(f"lease {self._bucket}.{self._key}"):
                await self._bus.jetstream.publish(self._subject, b"", headers=headers)
        except BusError as exc:
            log.info("canary.lease_not_released", term=lease.term, error=str(exc))
            return False
        finally:
            self._record = None
        return True

    async def _write(self, record: LeaseRecord, expected: int) -> int | None:
        """Write `record` if the key's latest revision is `expected`; its new
        revision, or None when the key moved on."""
        with kv_failures_as_bus_errors(f"lease {self._bucket}.{self._key}"):
            try:
                return await self._bus.kv_put(
                    self._bucket,
                    self._key,
                    msgspec.json.encode(record),
                    ttl=self.terms.ttl,
                    last=expected,
                )
            except nats.js.errors.KeyWrongLastSequenceError:
                return None


__all__ = ["LEADER_KEY", "LeaseBucket", "LeaseLostError", "new_term_id"]
