"""`InProcessBus`: the `MessageBus` interface without NATS, for running the
registry, canary controller and gateway in one process (and for tests).

It behaves as a NATS server would for the parts of it that meshgate uses:
messages go through the codec (so a type mismatch is dropped and logged
exactly as on NATS), ``*`` and ``>`` match as on NATS, queue groups share
work, a subscriber that falls `max_pending` messages behind loses the excess
(``bus.slow_consumer``), and a request with nobody listening fails at once.
Each subscription's handler runs in a task of the bus's own task group, so
nothing outlives ``async with``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType, UnionType
from typing import Self, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from structlog.typing import FilteringBoundLogger

from meshgate.bus.codec import Codec, decode, encode
from meshgate.bus.dispatch import Answer, answer, deliver
from meshgate.bus.errors import (
    BusUnavailableError,
    MalformedMessageError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from meshgate.bus.protocol import Handler, Responder
from meshgate.bus.subjects import Subjects, subject_matches, validate_subject

M = TypeVar("M")
Q = TypeVar("Q")
R = TypeVar("R")

_UNDELIVERABLE = (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError)


@dataclass(frozen=True, slots=True)
class _Delivery:
    subject: str
    data: bytes
    reply_to: MemoryObjectSendStream[Answer] | None


class InProcessSubscription:
    """One subscription on an `InProcessBus`."""

    def __init__(
        self,
        bus: InProcessBus,
        subject: str,
        queue: str | None,
        inbox: MemoryObjectSendStream[_Delivery],
    ) -> None:
        self._bus = bus
        self._subject = subject
        self._queue = queue
        self._inbox = inbox

    @property
    def subject(self) -> str:
        return self._subject

    async def unsubscribe(self) -> None:
        self._bus._forget(self)
        # Closing the inbox ends the consumer task once it has handled what
        # was already queued, as NATS delivers what it had sent before UNSUB.
        self._inbox.close()


class InProcessBus:
    """A message bus inside one process.

    >>> from meshgate.bus.messages import Presence
    >>> async def main() -> None:
    ...     async with InProcessBus() as bus:
    ...         seen = anyio.Event()
    ...         async def on_presence(p: Presence) -> None:
    ...             print(p.replica_id)
    ...             seen.set()
    ...         await bus.subscribe(bus.subjects.presence, Presence, on_presence)
    ...         await bus.publish(bus.subjects.presence,
    ...                           Presence(replica_id="gw-1", address="127.0.0.1:8080",
    ...                                    started_at=0.0))
    ...         await seen.wait()
    >>> anyio.run(main)
    gw-1
    """

    def __init__(
        self,
        prefix: str = "mesh",
        *,
        codec: Codec = "json",
        max_pending: int = 10_000,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self._subjects = Subjects(prefix)
        self._codec = codec
        self._max_pending = max_pending
        self._log: FilteringBoundLogger = log or structlog.get_logger("meshgate.bus")
        self._subscriptions: list[InProcessSubscription] = []
        self._queue_turns: dict[str, itertools.count[int]] = {}
        self._task_group: anyio.abc.TaskGroup | None = None

    @property
    def subjects(self) -> Subjects:
        return self._subjects

    @property
    def is_connected(self) -> bool:
        return self._task_group is not None

    async def __aenter__(self) -> Self:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None, "InProcessBus exited without being entered"
        for subscription in self._subscriptions:
            subscription._inbox.close()
        self._subscriptions.clear()
        task_group.cancel_scope.cancel()
        try:
            return await task_group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The task group wraps an error of the `async with` body; the
            # caller should see it as raised, not inside a group of one.
            if exc is not None and list(group.exceptions) == [exc]:
                return None
            raise

    async def publish(self, subject: str, message: msgspec.Struct) -> None:
        validate_subject(subject)
        self._route(_Delivery(subject, encode(message, self._codec), None))
        await anyio.lowlevel.checkpoint()

    async def request(
        self,
        subject: str,
        message: msgspec.Struct,
        reply_type: type[R],
        *,
        timeout: float = 2.0,  # noqa: ASYNC109 - same signature as Bus.request
    ) -> R:
        validate_subject(subject)
        # Room for one reply: the first answer wins, later ones are dropped,
        # as with a NATS request answered by several subscribers.
        send, receive = anyio.create_memory_object_stream[Answer](1)
        with send, receive:
            if not self._route(_Delivery(subject, encode(message, self._codec), send)):
                raise NoRespondersError(subject)
            try:
                with anyio.fail_after(timeout):
                    data, error = await receive.receive()
            except TimeoutError:
                raise RequestTimeoutError(subject, timeout) from None
        if error is not None:
            raise RemoteError(subject, *error)
        try:
            return decode(data, reply_type)
        except msgspec.DecodeError as exc:
            raise MalformedMessageError(f"reply on {subject!r}: {exc}") from exc

    async def subscribe(
        self,
        subject: str,
        message_type: type[M] | UnionType,
        handler: Handler[M],
        *,
        queue: str | None = None,
    ) -> InProcessSubscription:
        async def on_delivery(delivery: _Delivery) -> None:
            await deliver(delivery.data, delivery.subject, message_type, handler, self._log)

        return self._add(subject, queue, on_delivery)

    async def serve(
        self,
        subject: str,
        request_type: type[Q],
        handler: Responder[Q],
        *,
        queue: str | None = None,
    ) -> InProcessSubscription:
        async def on_delivery(delivery: _Delivery) -> None:
            reply = await answer(
                delivery.data, delivery.subject, request_type, handler, self._codec, self._log
            )
            if delivery.reply_to is not None:
                # undeliverable: the requester gave up, or another server answered first
                with contextlib.suppress(*_UNDELIVERABLE):
                    delivery.reply_to.send_nowait(reply)

        return self._add(subject, queue, on_delivery)

    def _add(
        self,
        subject: str,
        queue: str | None,
        on_delivery: Callable[[_Delivery], Awaitable[None]],
    ) -> InProcessSubscription:
        if self._task_group is None:
            raise BusUnavailableError("InProcessBus is not open: use `async with InProcessBus()`")
        validate_subject(subject, wildcards=True)
        send, receive = anyio.create_memory_object_stream[_Delivery](self._max_pending)
        subscription = InProcessSubscription(self, subject, queue, send)
        self._subscriptions.append(subscription)
        self._task_group.start_soon(_consume, receive, on_delivery)
        return subscription

    def _forget(self, subscription: InProcessSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def _route(self, delivery: _Delivery) -> int:
        """Hand `delivery` to every matching subscriber, one per queue group;
        returns how many subscriptions matched (0: nobody listens)."""
        if self._task_group is None:
            raise BusUnavailableError("InProcessBus is closed")
        matched = [s for s in self._subscriptions if subject_matches(s.subject, delivery.subject)]
        groups: dict[str, list[InProcessSubscription]] = {}
        receivers: list[InProcessSubscription] = []
        for subscription in matched:
            if subscription._queue is None:
                receivers.append(subscription)
            else:
                groups.setdefault(subscription._queue, []).append(subscription)
        for queue, members in groups.items():
            turn = next(self._queue_turns.setdefault(queue, itertools.count()))
            receivers.append(members[turn % len(members)])
        for subscription in receivers:
            try:
                subscription._inbox.send_nowait(delivery)
            except anyio.WouldBlock:
                self._log.warning(
                    "bus.slow_consumer", subject=delivery.subject, pattern=subscription.subject
                )
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass  # unsubscribed while we were routing
        return len(matched)


async def _consume(
    receive: MemoryObjectReceiveStream[_Delivery],
    on_delivery: Callable[[_Delivery], Awaitable[None]],
) -> None:
    async with receive:
        async for delivery in receive:
            await on_delivery(delivery)
