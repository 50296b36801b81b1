"""InProcessBus: the MessageBus semantics without NATS, under asyncio and trio."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import pytest
from structlog.testing import capture_logs

from meshgate.bus.errors import (
    BusUnavailableError,
    MalformedMessageError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from meshgate.bus.in_process import InProcessBus
from meshgate.bus.messages import (
    CircuitEvent,
    ConfigEvent,
    Event,
    HeartbeatRequest,
    Presence,
    Reply,
)
from meshgate.bus.protocol import MessageBus

pytestmark = pytest.mark.anyio

T = TypeVar("T")
AT = 1_700_000_000.0


class Inbox(Generic[T]):
    """Collects what a handler receives, so a test can wait for it."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[T](1000)

    async def handler(self, message: T) -> None:
        await self._send.send(message)

    async def next(self) -> T:
        with anyio.fail_after(2):
            return await self._receive.receive()

    def pending(self) -> int:
        return self._receive.statistics().current_buffer_used


def presence(replica: str) -> Presence:
    return Presence(replica_id=replica, address="127.0.0.1:8080", started_at=AT)


def circuit(route: str) -> CircuitEvent:
    return CircuitEvent(route=route, from_state="closed", to_state="open", replica="gw-1", at=AT)


async def ok_reply(request: HeartbeatRequest) -> Reply:
    return Reply(ok=True, error=f"{request.service}/{request.instance_id}")


async def test_a_subscriber_receives_what_is_published_decoded_as_its_type() -> None:
    async with InProcessBus() as bus:
        inbox = Inbox[Presence]()
        await bus.subscribe(bus.subjects.presence, Presence, inbox.handler)
        await bus.publish(bus.subjects.presence, presence("gw-1"))
        assert await inbox.next() == presence("gw-1")


async def test_wildcards_route_as_on_nats() -> None:
    async with InProcessBus() as bus:
        s = bus.subjects
        everything, circuits = Inbox[Event](), Inbox[CircuitEvent]()
        await bus.subscribe(s.all_events, Event, everything.handler)
        await bus.subscribe(s.all_circuit_events, CircuitEvent, circuits.handler)
        config = ConfigEvent(kind="removed", route="/api/users/*", at=AT)
        await bus.publish(s.config_events, config)
        await bus.publish(s.circuit_events("/api/users/*"), circuit("/api/users/*"))
        assert await everything.next() == config
        assert await everything.next() == circuit("/api/users/*")
        assert await circuits.next() == circuit("/api/users/*")
        assert circuits.pending() == 0


async def test_a_subscriber_sees_nothing_of_other_subjects() -> None:
    async with InProcessBus() as bus:
        s = bus.subjects
        inbox = Inbox[CircuitEvent]()
        await bus.subscribe(s.circuit_events("/a"), CircuitEvent, inbox.handler)
        await bus.publish(s.circuit_events("/b"), circuit("/b"))
        await bus.publish(s.circuit_events("/a"), circuit("/a"))
        # Delivery is in order, so had "/b" arrived it would come first.
        assert await inbox.next() == circuit("/a")


async def test_a_queue_group_gives_each_message_to_one_member() -> None:
    async with InProcessBus() as bus:
        subject = bus.subjects.presence
        first, second, everyone = Inbox[Presence](), Inbox[Presence](), Inbox[Presence]()
        await bus.subscribe(subject, Presence, first.handler, queue="workers")
        await bus.subscribe(subject, Presence, second.handler, queue="workers")
        await bus.subscribe(subject, Presence, everyone.handler)
        for n in range(10):
            await bus.publish(subject, presence(f"gw-{n}"))
        for _ in range(10):
            await everyone.next()
        await anyio.wait_all_tasks_blocked()
        assert first.pending() + second.pending() == 10
        assert first.pending() > 0
        assert second.pending() > 0


async def test_a_request_gets_what_serve_returns() -> None:
    async with InProcessBus() as bus:
        await bus.serve(bus.subjects.registry_heartbeat, HeartbeatRequest, ok_reply)
        reply = await bus.request(
            bus.subjects.registry_heartbeat,
            HeartbeatRequest(service="user-service", instance_id="user-1"),
            Reply,
        )
        assert reply == Reply(ok=True, error="user-service/user-1")


async def test_servers_in_a_queue_group_share_requests() -> None:
    async with InProcessBus() as bus:
        subject = bus.subjects.registry_heartbeat
        served: list[str] = []

        def server(name: str) -> Callable[[HeartbeatRequest], Awaitable[Reply]]:
            async def handle(request: HeartbeatRequest) -> Reply:
                served.append(name)
                return Reply(ok=True)

            return handle

        await bus.serve(subject, HeartbeatRequest, server("a"), queue="registry")
        await bus.serve(subject, HeartbeatRequest, server("b"), queue="registry")
        for n in range(6):
            await bus.request(subject, HeartbeatRequest(service="s", instance_id=str(n)), Reply)
        assert len(served) == 6
        assert set(served) == {"a", "b"}


async def test_a_request_nobody_serves_fails_at_once() -> None:
    async with InProcessBus() as bus:
        with pytest.raises(NoRespondersError, match=r"mesh\.registry\.query"):
            await bus.request(
                bus.subjects.registry_query, HeartbeatRequest(service="s", instance_id="i"), Reply
            )


async def test_a_request_nobody_answers_times_out() -> None:
    async with InProcessBus() as bus:
        listener = Inbox[HeartbeatRequest]()
        await bus.subscribe(bus.subjects.registry_heartbeat, HeartbeatRequest, listener.handler)
        with pytest.raises(RequestTimeoutError):
            await bus.request(
                bus.subjects.registry_heartbeat,
                HeartbeatRequest(service="s", instance_id="i"),
                Reply,
                timeout=0.05,
            )


async def test_a_failing_responder_answers_500_and_keeps_serving() -> None:
    async with InProcessBus() as bus:
        subject = bus.subjects.registry_heartbeat

        async def flaky(request: HeartbeatRequest) -> Reply:
            if request.instance_id == "boom":
                raise KeyError("boom")
            return Reply(ok=True)

        await bus.serve(subject, HeartbeatRequest, flaky)
        with capture_logs() as logs, pytest.raises(RemoteError) as failure:
            await bus.request(subject, HeartbeatRequest(service="s", instance_id="boom"), Reply)
        assert failure.value.code == "500"
        assert "KeyError" in failure.value.description
        assert [e["event"] for e in logs] == ["bus.handler_failed"]
        ok = await bus.request(subject, HeartbeatRequest(service="s", instance_id="i"), Reply)
        assert ok.ok


async def test_a_malformed_request_is_answered_400_and_logged() -> None:
    async with InProcessBus() as bus:
        subject = bus.subjects.registry_heartbeat
        await bus.serve(subject, HeartbeatRequest, ok_reply)
        with capture_logs() as logs, pytest.raises(RemoteError) as failure:
            await bus.request(subject, presence("gw-1"), Reply)
        assert failure.value.code == "400"
        assert logs[0]["event"] == "bus.message_dropped"
        assert logs[0]["subject"] == subject


async def test_a_reply_of_the_wrong_type_raises_malformed_message() -> None:
    async with InProcessBus() as bus:
        await bus.serve(bus.subjects.registry_heartbeat, HeartbeatRequest, ok_reply)
        with pytest.raises(MalformedMessageError):
            await bus.request(
                bus.subjects.registry_heartbeat,
                HeartbeatRequest(service="s", instance_id="i"),
                Presence,
            )


async def test_a_malformed_broadcast_is_dropped_and_logged_and_the_subscription_goes_on() -> None:
    async with InProcessBus() as bus:
        subject = bus.subjects.circuit_events("/a")
        inbox = Inbox[CircuitEvent]()
        await bus.subscribe(subject, CircuitEvent, inbox.handler)
        with capture_logs() as logs:
            await bus.publish(subject, presence("gw-1"))
            await bus.publish(subject, circuit("/a"))
            assert await inbox.next() == circuit("/a")
        assert [e["event"] for e in logs] == ["bus.message_dropped"]
        assert logs[0]["subject"] == subject


async def test_a_handler_that_raises_is_logged_and_the_subscription_goes_on() -> None:
    async with InProcessBus() as bus:
        inbox = Inbox[Presence]()

        async def fussy(message: Presence) -> None:
            if message.replica_id == "bad":
                raise RuntimeError("cannot handle bad")
            await inbox.handler(message)

        await bus.subscribe(bus.subjects.presence, Presence, fussy)
        with capture_logs() as logs:
            await bus.publish(bus.subjects.presence, presence("bad"))
            await bus.publish(bus.subjects.presence, presence("good"))
            assert await inbox.next() == presence("good")
        assert [e["event"] for e in logs] == ["bus.handler_failed"]


async def test_unsubscribe_stops_delivery() -> None:
    async with InProcessBus() as bus:
        stopped, still = Inbox[Presence](), Inbox[Presence]()
        subscription = await bus.subscribe(bus.subjects.presence, Presence, stopped.handler)
        await bus.subscribe(bus.subjects.presence, Presence, still.handler)
        await subscription.unsubscribe()
        await subscription.unsubscribe()
        await bus.publish(bus.subjects.presence, presence("gw-1"))
        await still.next()
        await anyio.wait_all_tasks_blocked()
        assert stopped.pending() == 0
        assert subscription.subject == bus.subjects.presence


async def test_a_slow_subscriber_loses_the_excess_and_the_publisher_never_waits() -> None:
    async with InProcessBus(max_pending=2) as bus:
        release = anyio.Event()
        inbox = Inbox[Presence]()

        async def slow(message: Presence) -> None:
            await release.wait()
            await inbox.handler(message)

        await bus.subscribe(bus.subjects.presence, Presence, slow)
        with capture_logs() as logs:
            await bus.publish(bus.subjects.presence, presence("0"))
            await anyio.wait_all_tasks_blocked()  # "0" is now in the handler
            for n in range(1, 6):
                await bus.publish(bus.subjects.presence, presence(str(n)))
        release.set()
        received = [(await inbox.next()).replica_id for _ in range(3)]
        assert received == ["0", "1", "2"]
        assert [e["event"] for e in logs] == ["bus.slow_consumer"] * 3


async def test_msgpack_works_end_to_end() -> None:
    async with InProcessBus(codec="msgpack") as bus:
        await bus.serve(bus.subjects.registry_heartbeat, HeartbeatRequest, ok_reply)
        reply = await bus.request(
            bus.subjects.registry_heartbeat, HeartbeatRequest(service="s", instance_id="i"), Reply
        )
        assert reply.error == "s/i"


async def test_invalid_subjects_are_refused() -> None:
    async with InProcessBus() as bus:
        with pytest.raises(ValueError, match="wildcards"):
            await bus.publish("mesh.events.*", presence("gw-1"))
        with pytest.raises(ValueError, match="empty token"):
            await bus.subscribe("mesh..x", Presence, Inbox[Presence]().handler)


async def test_it_satisfies_the_message_bus_protocol() -> None:
    async with InProcessBus() as bus:
        assert isinstance(bus, MessageBus)
        checked: MessageBus = bus
        assert checked.is_connected


async def test_a_bus_that_is_not_open_refuses_work() -> None:
    bus = InProcessBus()
    with pytest.raises(BusUnavailableError):
        await bus.subscribe(bus.subjects.presence, Presence, Inbox[Presence]().handler)
    async with bus:
        pass
    assert not bus.is_connected
    with pytest.raises(BusUnavailableError):
        await bus.publish(bus.subjects.presence, presence("gw-1"))


async def test_leaving_the_bus_cancels_handlers_that_are_still_running() -> None:
    entered = anyio.Event()
    with anyio.fail_after(2):
        async with InProcessBus() as bus:

            async def stuck(message: Presence) -> None:
                entered.set()
                await anyio.sleep_forever()

            await bus.subscribe(bus.subjects.presence, Presence, stuck)
            await bus.publish(bus.subjects.presence, presence("gw-1"))
            await entered.wait()


async def test_an_error_in_the_body_comes_out_as_itself() -> None:
    with pytest.raises(LookupError, match="mine"):
        async with InProcessBus():
            raise LookupError("mine")
