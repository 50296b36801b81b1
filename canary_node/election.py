"""`campaign`: stand by until this node holds the leader lease, lead while it
holds it, stand by again when it loses it — until cancelled.

A leadership term is a task group: the `lead` callable runs in it next to
the task that renews the lease, and the term ends (cancelling `lead`) when
the lease is lost, when it can no longer be renewed in time, or when `lead`
returns or resigns. Then the lease is released, so a standby takes over at
its next poll rather than after the TTL. Cancelling `campaign` (shutdown)
releases it too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import structlog

from canary_node.leader_lease import HeldLease, LeaseTerms
from canary_node.lease_bucket import LeaseBucket, LeaseLostError
from meshgate.bus.errors import BusError
from meshgate.resilience.clock import Clock

log = structlog.get_logger("meshgate.canary")

_RELEASE_TIMEOUT = 2.0


class Term:
    """One stretch of leadership, as `lead` sees it.

    `is_held()` says whether this node may still act as leader right now
    (rule 2 of `leader_lease`): check it before any write that only the
    leader may make. `resign(reason)` ends the term from inside.

    >>> from canary_node.leader_lease import HeldLease, LeaseTerms
    >>> now = [0.0]
    >>> term = Term(HeldLease("t1", 3, 0.0), LeaseTerms.for_ttl(3.0), clock=lambda: now[0])
    >>> term.is_held()
    True
    >>> now[0] = 2.7
    >>> term.is_held()
    False
    """

    def __init__(self, lease: HeldLease, terms: LeaseTerms, *, clock: Clock) -> None:
        self.lease = lease
        self._terms = terms
        self._clock = clock
        self._ended = anyio.Event()
        self.end_reason: str | None = None

    @property
    def id(self) -> str:
        return self.lease.term

    def is_held(self) -> bool:
        return self.end_reason is None and self.lease.is_held(self._clock(), self._terms)

    def resign(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
            self._ended.set()

    async def wait_ended(self) -> None:
        await self._ended.wait()


Lead = Callable[[Term], Awaitable[None]]
"""The leader's work for one term: runs until cancelled (or until it returns,
which ends the term)."""


async def campaign(bucket: LeaseBucket, lead: Lead, *, clock: Clock = time.monotonic) -> None:
    """Compete for the lease in `bucket` and run `lead` whenever it is ours,
    until cancelled.

    >>> async def controller(bus) -> None:
    ...     bucket = LeaseBucket(bus, bucket="MESH_CANARY", node_id="canary-a",
    ...                          terms=LeaseTerms.for_ttl(3.0))
    ...     async def lead(term: Term) -> None:
    ...         await anyio.sleep_forever()
    ...     await campaign(bucket, lead)
    """
    await _open(bucket)
    while True:
        lease = await _acquire(bucket)
        term = Term(lease, bucket.terms, clock=clock)
        log.info("canary.leading", node=bucket.node_id, term=term.id, revision=lease.revision)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_lead_term, lead, term)
                await _keep_lease(bucket, term, clock)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_TIMEOUT):
                await bucket.release(term.lease)
        log.warning(
            "canary.stepped_down", node=bucket.node_id, term=term.id, reason=term.end_reason
        )
        # A node that just resigned gives the others a poll to take over.
        await anyio.sleep(bucket.terms.poll_every)


async def _open(bucket: LeaseBucket) -> None:
    while True:
        try:
            await bucket.open()
            return
        except BusError as exc:
            log.warning("canary.bucket_unavailable", bucket=bucket.bucket, error=str(exc))
            await anyio.sleep(bucket.terms.poll_every)


async def _acquire(bucket: LeaseBucket) -> HeldLease:
    """Poll until the lease is ours; logs each new holder seen meanwhile."""
    told: str | None = None
    while True:
        try:
            lease = await bucket.try_acquire()
        except BusError as exc:
            log.warning("canary.lease_unreadable", bucket=bucket.bucket, error=str(exc))
            lease = None
        if lease is not None:
            return lease
        holder = bucket.seen_holder
        if holder is not None and holder != told:
            log.info("canary.standing_by", node=bucket.node_id, leader=holder)
            told = holder
        await anyio.sleep(bucket.terms.poll_every)


async def _lead_term(lead: Lead, term: Term) -> None:
    await lead(term)
    term.resign("the leader's work ended")


async def _keep_lease(bucket: LeaseBucket, term: Term, clock: Clock) -> None:
    """Renew the term's lease on time; return when the term is over."""
    terms = bucket.terms
    failures = 0
    while True:
        wake = term.lease.renewal_due(terms, failures=failures)
        with anyio.move_on_after(max(0.0, wake - clock())):
            await term.wait_ended()
        if term.end_reason is not None:
            return
        left = term.lease.valid_until(terms) - clock()
        if left <= 0:
            term.resign("the lease could not be renewed in time")
            return
        try:
            with anyio.fail_after(left):
                term.lease = await bucket.renew(term.lease)
            failures = 0
        except LeaseLostError as exc:
            term.resign(f"lease lost: {exc}")
            return
        except (BusError, TimeoutError) as exc:
            failures += 1
            log.warning("canary.lease_renewal_failed", term=term.id, error=str(exc) or repr(exc))


__all__ = ["Lead", "Term", "campaign"]
