"""The messaging interface that both `Bus` (NATS) and `InProcessBus` satisfy.

Discovery, gateway and node code is written against `MessageBus`, so the same
code runs on a cluster or embedded in one process. JetStream (KV, streams) is
NATS-only and lives on `Bus` alone.

Semantics shared by both implementations:

- Every payload is a msgspec Struct, encoded by `meshgate.bus.codec`.
- A subscription runs its handler for one message at a time, in arrival
  order. A message that fails to decode is logged (``bus.message_dropped``)
  and dropped; a handler that raises is logged (``bus.handler_failed``); the
  subscription goes on either way.
- Subscriptions that share a `queue` name share the load: each message goes
  to one of them.
- `serve` answers requests with what its handler returns. A request that does
  not decode gets `RemoteError` code "400", a handler that raises gets "500".
- `request` raises `NoRespondersError` when nobody listens on the subject,
  `RequestTimeoutError` when nobody answers in time, and
  `MalformedMessageError` when the reply does not decode. All are `BusError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import UnionType
from typing import Protocol, TypeVar, runtime_checkable

import msgspec

from meshgate.bus.subjects import Subjects

M = TypeVar("M")
Q = TypeVar("Q")
R = TypeVar("R")

Handler = Callable[[M], Awaitable[None]]
"""Receives one decoded broadcast."""

Responder = Callable[[Q], Awaitable[msgspec.Struct]]
"""Receives one decoded request and returns the reply."""


@runtime_checkable
class Subscription(Protocol):
    """A live subscription; `unsubscribe` stops it (idempotent)."""

    @property
    def subject(self) -> str: ...

    async def unsubscribe(self) -> None: ...


@runtime_checkable
class MessageBus(Protocol):
    """Publish, subscribe, request and serve typed messages.

    >>> from meshgate.bus.messages import CircuitEvent
    >>> async def watch_circuits(bus: MessageBus) -> Subscription:
    ...     async def on_event(event: CircuitEvent) -> None:
    ...         print(event.route, event.to_state)
    ...     return await bus.subscribe(bus.subjects.all_circuit_events, CircuitEvent, on_event)
    """

    @property
    def subjects(self) -> Subjects:
        """The subjects under this bus's prefix."""
        ...

    @property
    def is_connected(self) -> bool:
        """Whether messages flow right now (False while NATS reconnects)."""
        ...

    async def publish(self, subject: str, message: msgspec.Struct) -> None:
        """Broadcast `message`; returns once it is handed to the bus, not delivered."""
        ...

    async def request(
        self,
        subject: str,
        message: msgspec.Struct,
        reply_type: type[R],
        *,
        # A number, not a cancel scope: NATS needs it to bound the reply wait.
        timeout: float = 2.0,  # noqa: ASYNC109
    ) -> R:
        """Send `message` to one server of `subject` and return its reply."""
        ...

    async def subscribe(
        self,
        subject: str,
        message_type: type[M] | UnionType,
        handler: Handler[M],
        *,
        queue: str | None = None,
    ) -> Subscription:
        """Run `handler` on each message on `subject` (wildcards allowed)."""
        ...

    async def serve(
        self,
        subject: str,
        request_type: type[Q],
        handler: Responder[Q],
        *,
        queue: str | None = None,
    ) -> Subscription:
        """Answer requests on `subject`; `queue` lets several servers share them."""
        ...
