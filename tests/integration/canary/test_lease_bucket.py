"""The leader lease on a real nats-server: created only if absent, renewed
only by its holder, gone after its TTL, and released for a successor."""

from __future__ import annotations

import time

import anyio
import pytest

from canary_node.leader_lease import LeaseTerms
from canary_node.lease_bucket import LeaseBucket, LeaseLostError
from meshgate.bus.connection import Bus

pytestmark = pytest.mark.anyio

TERMS = LeaseTerms.for_ttl(1.0)  # the shortest TTL the server counts


def lease_bucket(bus: Bus, node_id: str) -> LeaseBucket:
    return LeaseBucket(bus, bucket=bus.subjects.canary_bucket, node_id=node_id, terms=TERMS)


async def test_only_one_of_two_nodes_acquires_a_free_lease(bus: Bus) -> None:
    first, second = lease_bucket(bus, "canary-a"), lease_bucket(bus, "canary-b")
    await first.open()
    held = await first.try_acquire()
    assert held is not None
    assert await second.try_acquire() is None
    assert second.seen_holder == "canary-a"
    key = await second.read()
    assert key is not None
    assert key.record is not None
    assert (key.record.holder, key.record.term, key.revision) == (
        "canary-a",
        held.term,
        held.revision,
    )


async def test_the_holder_renews_with_compare_and_set_on_its_revision(bus: Bus) -> None:
    holder = lease_bucket(bus, "canary-a")
    await holder.open()
    held = await holder.try_acquire()
    assert held is not None
    renewed = await holder.renew(held)
    assert renewed.revision > held.revision
    assert renewed.term == held.term
    assert renewed.sent_at >= held.sent_at


async def test_a_renewal_after_expiry_finds_the_lease_lost(bus: Bus) -> None:
    holder = lease_bucket(bus, "canary-a")
    await holder.open()
    held = await holder.try_acquire()
    assert held is not None
    await anyio.sleep(1.3)
    with pytest.raises(LeaseLostError, match="expired"):
        await holder.renew(held)


async def test_the_server_ends_an_unrenewed_lease_after_its_ttl_and_a_standby_takes_it(
    bus: Bus,
) -> None:
    first, second = lease_bucket(bus, "canary-a"), lease_bucket(bus, "canary-b")
    await first.open()
    held = await first.try_acquire()
    assert held is not None
    started = time.monotonic()
    with anyio.fail_after(3):
        while (taken := await second.try_acquire()) is None:  # noqa: ASYNC110 - polls the server
            await anyio.sleep(0.05)
    waited = time.monotonic() - started
    assert 0.9 <= waited < 1.6
    assert taken.term != held.term
    with pytest.raises(LeaseLostError, match="canary-b holds the lease"):
        await first.renew(held)


async def test_a_released_lease_is_taken_at_once_over_its_delete_marker(bus: Bus) -> None:
    first, second = lease_bucket(bus, "canary-a"), lease_bucket(bus, "canary-b")
    await first.open()
    held = await first.try_acquire()
    assert held is not None
    assert await first.release(held)
    marker = await second.read()
    assert marker is not None
    assert marker.deleted
    taken = await second.try_acquire()
    assert taken is not None
    assert taken.revision > marker.revision


async def test_releasing_a_lease_someone_else_holds_now_leaves_it_alone(bus: Bus) -> None:
    first, second = lease_bucket(bus, "canary-a"), lease_bucket(bus, "canary-b")
    await first.open()
    held = await first.try_acquire()
    assert held is not None
    await anyio.sleep(1.2)
    taken = await second.try_acquire()
    assert taken is not None
    assert not await first.release(held)
    key = await second.read()
    assert key is not None
    assert key.record is not None
    assert key.record.holder == "canary-b"


async def test_a_renewal_whose_ack_was_lost_is_adopted_by_its_own_term(bus: Bus) -> None:
    holder = lease_bucket(bus, "canary-a")
    await holder.open()
    held = await holder.try_acquire()
    assert held is not None
    renewed = await holder.renew(held)
    # Renew from the older revision, as if the ack of `renewed` never came back.
    again = await holder.renew(held)
    assert again.revision > renewed.revision


async def test_an_unreadable_lease_is_still_a_lease(bus: Bus) -> None:
    standby = lease_bucket(bus, "canary-b")
    await standby.open()
    await bus.kv_put(bus.subjects.canary_bucket, "leader", b"not json", ttl=1.0)
    assert await standby.try_acquire() is None
    key = await standby.read()
    assert key is not None
    assert not key.deleted
    assert key.record is None
