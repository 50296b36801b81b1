"""Leader election between controllers in one process, each on a connection
of its own, on a real nats-server: one leads, a stopped leader hands over at
once, a dead one (connection gone, lease not released) after its TTL, and
never do two lead at the same time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from canary_node.election import Term, campaign
from canary_node.leader_lease import LeaseTerms
from canary_node.lease_bucket import LeaseBucket
from meshgate.bus.connection import Bus
from tests.integration.canary.conftest import Connect
from tests.polling import eventually

pytestmark = pytest.mark.anyio

TTL = 2.0


class Timeline:
    """Who led when: (node, "start"|"end", monotonic time)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, float]] = []
        self.leading: set[str] = set()

    def lead_as(self, node: str) -> Callable[[Term], Awaitable[None]]:
        async def lead(term: Term) -> None:
            assert not self.leading, f"{node} leads while {self.leading} still does"
            self.leading.add(node)
            self.entries.append((node, "start", time.monotonic()))
            try:
                await anyio.sleep_forever()
            finally:
                self.leading.discard(node)
                self.entries.append((node, "end", time.monotonic()))

        return lead


def lease_bucket(bus: Bus, node: str) -> LeaseBucket:
    return LeaseBucket(
        bus, bucket=bus.subjects.canary_bucket, node_id=node, terms=LeaseTerms.for_ttl(TTL)
    )


async def test_exactly_one_of_two_controllers_leads(connect: Connect) -> None:
    timeline = Timeline()
    async with connect("a") as bus_a, connect("b") as bus_b, anyio.create_task_group() as tg:
        tg.start_soon(campaign, lease_bucket(bus_a, "a"), timeline.lead_as("a"))
        tg.start_soon(campaign, lease_bucket(bus_b, "b"), timeline.lead_as("b"))
        await eventually(lambda: len(timeline.leading) == 1)
        leader = next(iter(timeline.leading))
        # Several lease renewals later, still the same one, and only one.
        for _ in range(20):
            await anyio.sleep(0.15)
            assert timeline.leading == {leader}
        tg.cancel_scope.cancel()
    assert [entry[:2] for entry in timeline.entries] == [(leader, "start"), (leader, "end")]


async def test_a_stopped_leader_releases_the_lease_and_the_standby_leads_at_once(
    connect: Connect,
) -> None:
    timeline = Timeline()
    leader_a = anyio.CancelScope()
    async with connect("a") as bus_a, connect("b") as bus_b, anyio.create_task_group() as tg:
        tg.start_soon(_campaign_in, leader_a, lease_bucket(bus_a, "a"), timeline.lead_as("a"))
        await eventually(lambda: timeline.leading == {"a"})
        tg.start_soon(campaign, lease_bucket(bus_b, "b"), timeline.lead_as("b"))
        await anyio.sleep(0.5)  # b stands by, polling
        leader_a.cancel()
        stopped = time.monotonic()
        await eventually(lambda: timeline.leading == {"b"})
        took_over = time.monotonic() - stopped
        tg.cancel_scope.cancel()
    # One poll, not a whole TTL.
    assert took_over <= LeaseTerms.for_ttl(TTL).poll_every + 0.3


async def test_the_standby_takes_over_within_the_ttl_after_the_leader_dies(
    connect: Connect,
) -> None:
    timeline = Timeline()
    async with connect("b") as bus_b, anyio.create_task_group() as tg:
        async with connect("a") as bus_a:
            tg.start_soon(campaign, lease_bucket(bus_a, "a"), timeline.lead_as("a"))
            await eventually(lambda: timeline.leading == {"a"})
            tg.start_soon(campaign, lease_bucket(bus_b, "b"), timeline.lead_as("b"))
            await anyio.sleep(0.5)  # b stands by, polling
            assert timeline.leading == {"a"}
            # "a" dies: its connection goes, its lease stays until the TTL ends it.
            await bus_a.nats_client.close()
            died = time.monotonic()
            await eventually(lambda: "b" in timeline.leading, within=TTL + 2)
            took_over = time.monotonic() - died
        tg.cancel_scope.cancel()
    terms = LeaseTerms.for_ttl(TTL)
    assert took_over <= TTL + terms.poll_every + 0.3
    # "a" stopped acting before "b" started: never two leaders at once.
    a_end = next(t for node, what, t in timeline.entries if (node, what) == ("a", "end"))
    b_start = next(t for node, what, t in timeline.entries if (node, what) == ("b", "start"))
    assert a_end < b_start


async def test_a_leader_that_resigns_hands_over_to_the_standby(connect: Connect) -> None:
    starts: list[str] = []

    async def lead_then_resign(term: Term) -> None:
        starts.append("a")
        term.resign("testing")
        await anyio.sleep_forever()

    timeline = Timeline()
    async with connect("a") as bus_a, connect("b") as bus_b, anyio.create_task_group() as tg:
        tg.start_soon(campaign, lease_bucket(bus_a, "a"), lead_then_resign)
        await eventually(lambda: starts == ["a"])
        tg.start_soon(campaign, lease_bucket(bus_b, "b"), timeline.lead_as("b"))
        await eventually(lambda: timeline.leading == {"b"}, within=2)
        tg.cancel_scope.cancel()


async def _campaign_in(
    scope: anyio.CancelScope, bucket: LeaseBucket, lead: Callable[[Term], Awaitable[None]]
) -> None:
    with scope:
        await campaign(bucket, lead)
