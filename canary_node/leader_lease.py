"""The leader lease's arithmetic: when a held lease is renewed, until when its
holder may act as leader, and what a standby does with the lease key it
reads. Nothing here does I/O or reads a clock; callers pass `now` (their
monotonic clock) and the key as they read it.

The rules:

1. The lease is one key in a JetStream KV bucket, written with a per-key
   TTL of `ttl` seconds. The server removes it `ttl` after storing the write
   (rounded up to whole seconds), so never before ``sent_at + ttl``, where
   `sent_at` is when the holder sent that write, by the holder's clock.
2. The holder acts as leader only while ``now < sent_at + ttl - margin``
   for its latest successful write. It thus stops before any standby can
   take the key, even when its renewals fail without telling it why (a
   partition, a paused process). `margin` covers clocks that run at
   slightly different rates and the time between checking and acting.
3. A renewal is due `renew_every` after the latest successful write; a
   failed attempt is retried every `retry_every` until rule 2 says stop.
   With the defaults (a third of `ttl`) two renewals may fail before the
   lease is at risk.
4. A standby reads the key every `poll_every`. No entry: it claims the key
   with "create if absent" (expected last revision 0). A delete marker (a
   leader that stepped down): it writes over it, expecting the marker's
   revision. A live lease: it waits, whoever holds it; only the TTL or its
   holder ends a lease. Of several standbys claiming at once, exactly one
   write succeeds: JetStream applies writes to a key one at a time.

So after a leader dies, a standby leads within ``ttl + poll_every`` (at
most `ttl` after the last renewal, plus one poll), and two nodes never act
as leader at once as long as their clocks' rates differ by less than
``margin / ttl``.

>>> terms = LeaseTerms.for_ttl(3.0)
>>> lease = HeldLease(term="t1", revision=7, sent_at=100.0)
>>> lease.renewal_due(terms), lease.valid_until(terms)
(101.0, 102.7)
>>> lease.is_held(102.5, terms), lease.is_held(102.7, terms)
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """How long a lease lasts and how often it is renewed, retried and polled
    (all seconds); see the module docstring for the rules they feed."""

    ttl: float
    renew_every: float
    retry_every: float
    poll_every: float
    margin: float

    def __post_init__(self) -> None:
        for name in ("ttl", "renew_every", "retry_every", "poll_every"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ValueError(f"{name}={value!r} is not allowed: expected a number > 0")
        if not 0 <= self.margin < self.ttl:
            raise ValueError(f"margin={self.margin!r} is not allowed: expected 0 <= margin < ttl")
        if self.renew_every >= self.ttl - self.margin:
            raise ValueError(
                f"renew_every={self.renew_every!r} is not allowed: a lease of ttl={self.ttl!r} "
                f"must be renewed before ttl - margin = {self.ttl - self.margin!r}"
            )

    @classmethod
    def for_ttl(cls, ttl: float) -> LeaseTerms:
        """The usual terms for `ttl`: renew every third of it, retry a failed
        renewal every twelfth, poll as a standby every sixth, and stop acting
        a tenth (at most half a second) before the lease could expire.

        >>> LeaseTerms.for_ttl(3.0)
        LeaseTerms(ttl=3.0, renew_every=1.0, retry_every=0.25, poll_every=0.5, margin=0.3)
        """
        return cls(
            ttl=ttl,
            renew_every=ttl / 3,
            retry_every=ttl / 12,
            poll_every=ttl / 6,
            margin=min(0.5, ttl / 10),
        )


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A lease this node holds: its `term` (unique per acquisition, written in
    the key), the key's `revision` after our latest write, and `sent_at`,
    when that write was sent (the holder's monotonic clock)."""

    term: str
    revision: int
    sent_at: float

    def valid_until(self, terms: LeaseTerms) -> float:
        """The last moment the holder may act as leader (rule 2)."""
        return self.sent_at + terms.ttl - terms.margin

    def is_held(self, now: float, terms: LeaseTerms) -> bool:
        """Whether the holder may act as leader at `now`."""
        return now < self.valid_until(terms)

    def renewal_due(self, terms: LeaseTerms, *, failures: int = 0) -> float:
        """When to attempt the next renewal, after `failures` failed attempts
        since the latest successful write (rule 3); never after `valid_until`.

        >>> terms = LeaseTerms.for_ttl(3.0)
        >>> lease = HeldLease(term="t1", revision=7, sent_at=0.0)
        >>> [lease.renewal_due(terms, failures=n) for n in (0, 1, 2, 9)]
        [1.0, 1.25, 1.5, 2.7]
        """
        due = self.sent_at + terms.renew_every + failures * terms.retry_every
        return min(due, self.valid_until(terms))


class LeaseRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The lease key's value, for whoever reads the bucket: who leads, in
    which term, since when and last renewed when (wall-clock epoch seconds),
    and the TTL it is renewed with."""

    v: int = 1
    holder: str
    term: str
    acquired_at: float
    renewed_at: float
    ttl: float


@dataclass(frozen=True, slots=True)
class LeaseKey:
    """The lease key as a standby reads it: the `revision` of its latest
    entry, whether that entry is a delete marker (`deleted`, left by a
    leader that stepped down), and the `record` it holds (None when deleted,
    or when the value does not decode: a live lease all the same)."""

    revision: int
    deleted: bool
    record: LeaseRecord | None = None


def claim_revision(key: LeaseKey | None) -> int | None:
    """The revision to expect when claiming the lease (rule 4): 0 when the
    key has no entry, the marker's revision when its holder deleted it, or
    None when a live lease holds it and the standby must wait.

    >>> claim_revision(None), claim_revision(LeaseKey(4, deleted=True))
    (0, 4)
    >>> print(claim_revision(LeaseKey(4, deleted=False)))
    None
    """
    if key is None:
        return 0
    if key.deleted:
        return key.revision
    return None


__all__ = ["HeldLease", "LeaseKey", "LeaseRecord", "LeaseTerms", "claim_revision"]
