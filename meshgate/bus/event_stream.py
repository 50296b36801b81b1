"""The event stream: JetStream stream `Subjects.events_stream` (``MESH_EVENTS``)
keeps every broadcast under ``mesh.events.>`` (registry, circuit, canary,
config), so that they can be read back and followed (`meshgate events`).

Every node that publishes events calls `ensure_event_stream` at start; the
first creates the stream, the others find it. Reading:

    async for event in follow_events(bus, since=timedelta(minutes=10), kinds={"circuit"}):
        print(event_line(event))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from typing import Literal

import anyio
import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import api

from meshgate.bus.codec import decode
from meshgate.bus.connection import Bus
from meshgate.bus.messages import Event
from meshgate.bus.subjects import Subjects

log = structlog.get_logger("meshgate.bus")

EVENT_KINDS = ("registry", "circuit", "canary", "config")
"""The kinds of event, as `--kind` and `kinds` name them (the `type` tag of `Event`)."""

KEEP_FOR = 24 * 3600.0
"""Seconds the stream keeps an event by default."""
KEEP_BYTES = 512 * 1024 * 1024
"""Bytes the stream keeps at most by default (oldest events go first)."""

Since = datetime | timedelta | Literal["all", "new"]
"""Where reading starts: a moment, that long ago, every event kept, or only new ones."""


async def ensure_event_stream(
    bus: Bus, *, max_age: float = KEEP_FOR, max_bytes: int = KEEP_BYTES
) -> api.StreamInfo:
    """The event stream, created (with these limits) when missing.

    >>> async def at_start(bus: Bus) -> None:
    ...     info = await ensure_event_stream(bus)
    ...     print(info.config.name)     # MESH_EVENTS
    """
    subjects = bus.subjects
    return await bus.ensure_stream(
        subjects.events_stream, [subjects.all_events], max_age=max_age, max_bytes=max_bytes
    )


def kind_subjects(subjects: Subjects, kinds: Collection[str]) -> list[str]:
    """The subjects that carry events of `kinds` (all events when empty).

    >>> kind_subjects(Subjects(), ["circuit", "config"])
    ['mesh.events.circuit.*', 'mesh.events.config']
    """
    unknown = sorted(set(kinds) - set(EVENT_KINDS))
    if unknown:
        raise ValueError(
            f"kinds={unknown!r} is not allowed: expected some of {', '.join(EVENT_KINDS)}"
        )
    by_kind = {
        "registry": subjects.all_registry_events,
        "circuit": subjects.all_circuit_events,
        "canary": subjects.all_canary_events,
        "config": subjects.config_events,
    }
    if not kinds:
        return [subjects.all_events]
    return [by_kind[kind] for kind in EVENT_KINDS if kind in kinds]


async def follow_events(
    bus: Bus,
    *,
    since: Since = "all",
    kinds: Collection[str] = (),
    follow: bool = False,
    buffer: int = 256,
) -> AsyncIterator[Event]:
    """The events of `kinds` (all when empty) kept since `since`, oldest
    first; with `follow`, then each new one as it comes, until the caller
    stops iterating. Events that do not decode are logged and skipped.

    >>> async def last_ten_minutes_of_circuits(bus: Bus) -> list[Event]:
    ...     return [event async for event in follow_events(
    ...         bus, since=timedelta(minutes=10), kinds={"circuit"})]
    """
    filters = kind_subjects(bus.subjects, kinds)
    await ensure_event_stream(bus)
    config = api.ConsumerConfig(filter_subjects=filters if len(filters) > 1 else None)
    if isinstance(since, timedelta):
        since = datetime.now(UTC) - since
    if isinstance(since, datetime):
        config.deliver_policy = api.DeliverPolicy.BY_START_TIME
        config.opt_start_time = since.astimezone(UTC)
    elif since == "new":
        config.deliver_policy = api.DeliverPolicy.NEW
    else:
        config.deliver_policy = api.DeliverPolicy.ALL

    send, receive = anyio.create_memory_object_stream[Msg | None](buffer)

    async def on_message(msg: Msg) -> None:
        try:
            await send.send(msg)
            if not follow and msg.metadata.num_pending == 0:
                await send.send(None)  # caught up: the end of what is kept
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the reader has stopped; the subscription is going

    subscription = await bus.jetstream.subscribe(
        filters[0],
        stream=bus.subjects.events_stream,
        cb=on_message,
        ordered_consumer=True,
        config=config,
    )
    try:
        if not follow:
            info = await subscription.consumer_info()
            delivered = 0 if info.delivered is None else info.delivered.consumer_seq
            if info.num_pending == 0 and not delivered:
                return  # nothing kept that matches
        async for msg in receive:
            if msg is None:
                return
            try:
                event: Event = decode(msg.data, Event)
            except msgspec.DecodeError as error:
                log.warning("events.undecodable", subject=msg.subject, error=str(error))
                continue
            yield event
    finally:
        receive.close()
        with anyio.CancelScope(shield=True):
            await subscription.unsubscribe()
        send.close()
