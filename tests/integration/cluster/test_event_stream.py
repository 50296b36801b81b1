"""The event stream on a real nats-server: events kept, read back by kind
and by time, followed as they come, and printed by `meshgate events`."""

from __future__ import annotations

import time
from datetime import timedelta

import anyio
import pytest

from meshgate import events_command
from meshgate.bus.connection import Bus
from meshgate.bus.event_stream import ensure_event_stream, follow_events
from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import CircuitEvent, ConfigEvent, Event, RegistryEvent
from meshgate.bus.nats_server import NatsServer
from meshgate.cli import main

pytestmark = pytest.mark.anyio


def circuit(to_state: str = "open") -> CircuitEvent:
    return CircuitEvent(
        route="pay",
        from_state="closed",
        to_state=to_state,  # type: ignore[arg-type]
        replica="gw-a",
        reset_deadline=time.time() + 30 if to_state == "open" else None,
        generation=1,
        at=time.time(),
    )


def registered() -> RegistryEvent:
    instance = ServiceInstance(id="user-1", name="user-service", host="127.0.0.1", port=3001)
    return RegistryEvent(kind="registered", instance=instance, at=time.time())


def removed() -> ConfigEvent:
    return ConfigEvent(kind="removed", route="orders", at=time.time())


async def publish_all(bus: Bus, *events: Event) -> None:
    for event in events:
        if isinstance(event, CircuitEvent):
            subject = bus.subjects.circuit_events(event.route)
        elif isinstance(event, RegistryEvent):
            subject = bus.subjects.registry_events(event.instance.name)
        else:
            assert isinstance(event, ConfigEvent)
            subject = bus.subjects.config_events
        await bus.publish(subject, event)
    await bus.flush()


async def test_kept_events_read_back_in_order_and_by_kind(
    nats_server: NatsServer, prefix: str
) -> None:
    async with await Bus.connect(nats_server.url, prefix=prefix) as bus:
        await ensure_event_stream(bus)
        sent = [circuit(), registered(), removed()]
        await publish_all(bus, *sent)
        with anyio.fail_after(5):
            everything = [event async for event in follow_events(bus)]
            circuits_and_config = [
                event async for event in follow_events(bus, kinds={"config", "circuit"})
            ]
            registry = [event async for event in follow_events(bus, kinds={"registry"})]
            canary = [event async for event in follow_events(bus, kinds={"canary"})]
    assert everything == sent
    assert circuits_and_config == [sent[0], sent[2]]
    assert registry == [sent[1]]
    assert canary == []


async def test_reading_since_a_while_ago_skips_older_events(
    nats_server: NatsServer, prefix: str
) -> None:
    async with await Bus.connect(nats_server.url, prefix=prefix) as bus:
        await ensure_event_stream(bus)
        await publish_all(bus, circuit())
        await anyio.sleep(0.6)
        newer = removed()
        await publish_all(bus, newer)
        with anyio.fail_after(5):
            recent = [e async for e in follow_events(bus, since=timedelta(seconds=0.3))]
    assert recent == [newer]


async def test_following_yields_new_events_as_they_come(
    nats_server: NatsServer, prefix: str
) -> None:
    async with await Bus.connect(nats_server.url, prefix=prefix) as bus:
        await ensure_event_stream(bus)
        await publish_all(bus, removed())  # before: not for a "new" reader
        seen: list[Event] = []

        async def read() -> None:
            async for event in follow_events(bus, since="new", follow=True):
                seen.append(event)
                if len(seen) == 2:
                    return

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.sleep(0.2)
                later = [circuit("open"), circuit("closed")]
                await publish_all(bus, *later)
    assert seen == later


def event_lines(out: str) -> list[str]:
    """The event lines of `out` (ISO times in UTC), without the logs."""
    return [line for line in out.splitlines() if line[:4].isdigit() and "Z  " in line]


@pytest.fixture
def keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command configures structlog for its process; in a test process that
    would outlive the test (with stderr captured by this test)."""
    monkeypatch.setattr(events_command, "configure_logging", lambda level: None)


@pytest.mark.usefixtures("keep_logging")
def test_meshgate_events_prints_one_line_per_event(
    nats_server: NatsServer, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed() -> None:
        async with await Bus.connect(nats_server.url, prefix=prefix) as bus:
            await ensure_event_stream(bus)
            await publish_all(bus, circuit(), removed())

    anyio.run(seed, backend="asyncio")
    assert main(["events", "--nats", nats_server.url, "--prefix", prefix]) == 0
    lines = event_lines(capsys.readouterr().out)
    assert len(lines) == 2
    assert "circuit" in lines[0]
    assert "pay  closed -> open on gw-a" in lines[0]
    assert lines[1].endswith("config    orders  removed")
    assert main(["events", "--nats", nats_server.url, "--prefix", prefix, "--kind", "config"]) == 0
    assert len(event_lines(capsys.readouterr().out)) == 1


@pytest.mark.usefixtures("keep_logging")
def test_meshgate_events_says_so_when_nats_is_not_there(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--nats", "nats://127.0.0.1:1"]) == 2
    assert "meshgate events:" in capsys.readouterr().err
