"""The leader lease's arithmetic, driven by plain numbers for `now`: when a
holder renews, until when it may act, and what a standby does with the key
it reads."""

from __future__ import annotations

import pytest

from canary_node.leader_lease import HeldLease, LeaseKey, LeaseRecord, LeaseTerms, claim_revision

TERMS = LeaseTerms(ttl=3.0, renew_every=1.0, retry_every=0.25, poll_every=0.5, margin=0.3)
RECORD = LeaseRecord(holder="canary-a", term="t1", acquired_at=0.0, renewed_at=0.0, ttl=3.0)


def test_default_terms_renew_every_third_and_stop_a_tenth_before_expiry() -> None:
    assert LeaseTerms.for_ttl(3.0) == TERMS
    assert LeaseTerms.for_ttl(30.0).margin == 0.5  # capped


def test_a_holder_acts_until_ttl_minus_margin_after_its_last_write_was_sent() -> None:
    lease = HeldLease(term="t1", revision=4, sent_at=10.0)
    assert lease.valid_until(TERMS) == pytest.approx(12.7)
    assert lease.is_held(12.69, TERMS)
    assert not lease.is_held(12.7, TERMS)


def test_the_holder_stops_before_the_server_can_let_anyone_else_take_the_key() -> None:
    # The server keeps the key at least `ttl` after it received the write,
    # which is after the holder sent it.
    lease = HeldLease(term="t1", revision=4, sent_at=10.0)
    earliest_takeover = lease.sent_at + TERMS.ttl
    assert lease.valid_until(TERMS) < earliest_takeover


def test_renewal_is_due_renew_every_after_the_last_write() -> None:
    lease = HeldLease(term="t1", revision=4, sent_at=10.0)
    assert lease.renewal_due(TERMS) == pytest.approx(11.0)


def test_failed_renewals_are_retried_every_retry_every_until_the_lease_runs_out() -> None:
    lease = HeldLease(term="t1", revision=4, sent_at=10.0)
    due = [lease.renewal_due(TERMS, failures=n) for n in range(10)]
    assert due[:4] == pytest.approx([11.0, 11.25, 11.5, 11.75])
    assert max(due) == pytest.approx(lease.valid_until(TERMS))


def test_a_renewed_lease_counts_from_its_new_write() -> None:
    first = HeldLease(term="t1", revision=4, sent_at=10.0)
    renewed = HeldLease(term="t1", revision=9, sent_at=first.renewal_due(TERMS))
    assert renewed.valid_until(TERMS) == pytest.approx(13.7)
    assert renewed.is_held(13.0, TERMS)


def test_two_failed_renewals_leave_the_lease_held() -> None:
    lease = HeldLease(term="t1", revision=4, sent_at=0.0)
    third_attempt = lease.renewal_due(TERMS, failures=2)
    assert lease.is_held(third_attempt, TERMS)


def test_a_standby_creates_a_key_that_has_no_entry() -> None:
    assert claim_revision(None) == 0


def test_a_standby_writes_over_a_delete_marker_expecting_its_revision() -> None:
    assert claim_revision(LeaseKey(17, deleted=True)) == 17


def test_a_standby_waits_while_a_live_lease_holds_the_key_whoever_holds_it() -> None:
    assert claim_revision(LeaseKey(17, deleted=False, record=RECORD)) is None
    assert claim_revision(LeaseKey(17, deleted=False)) is None  # unreadable, still live


@pytest.mark.parametrize(
    ("field", "value"),
    [("ttl", 0.0), ("renew_every", -1.0), ("poll_every", float("inf")), ("retry_every", 0.0)],
)
def test_terms_refuse_non_positive_durations(field: str, value: float) -> None:
    options = {"ttl": 3.0, "renew_every": 1.0, "retry_every": 0.25, "poll_every": 0.5}
    options[field] = value
    with pytest.raises(ValueError, match=field):
        LeaseTerms(**options, margin=0.3)


def test_terms_refuse_a_renewal_that_comes_after_the_lease_stops_being_held() -> None:
    with pytest.raises(ValueError, match="renew_every"):
        LeaseTerms(ttl=3.0, renew_every=2.8, retry_every=0.25, poll_every=0.5, margin=0.3)


def test_terms_refuse_a_margin_as_long_as_the_lease() -> None:
    with pytest.raises(ValueError, match="margin"):
        LeaseTerms(ttl=3.0, renew_every=1.0, retry_every=0.25, poll_every=0.5, margin=3.0)
