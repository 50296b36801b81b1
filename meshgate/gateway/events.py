"""The gateway's events and the emitter behind `GatewayServer.on(event, handler)`.

Handlers may be plain functions or coroutine functions. A plain handler runs
at once; a coroutine handler runs in the gateway's task group (never as an
orphan task) when one is running, else it is awaited where the event is
emitted from async code. A handler that raises is logged with the event's
name; the others still run and the request that caused it is not harmed.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_args

import anyio.abc
import structlog

GatewayEvent = Literal[
    "circuit:open",
    "circuit:close",
    "circuit:half-open",
    "canary:step",
    "canary:promote",
    "canary:rollback",
    "canary:pause",
    "canary:resume",
    "route:added",
    "route:removed",
    "instance:up",
    "instance:down",
]
EVENTS: tuple[str, ...] = get_args(GatewayEvent)

EventHandler = Callable[[dict[str, Any]], object]
"""Gets the event's details as a mapping (`route`, and what the event carries)."""

_log = structlog.get_logger("meshgate.gateway")


class EventEmitter:
    """Handlers by event name.

    >>> seen = []
    >>> emitter = EventEmitter()
    >>> emitter.on("route:added", seen.append)
    >>> emitter.emit("route:added", {"route": "users"})
    >>> seen
    [{'route': 'users'}]
    """

    __slots__ = ("_handlers", "_task_group")

    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = {event: [] for event in EVENTS}
        self._task_group: anyio.abc.TaskGroup | None = None

    def on(self, event: str, handler: EventHandler) -> None:
        handlers = self._handlers.get(event)
        if handlers is None:
            raise ValueError(f"event={event!r} is not allowed: expected one of {', '.join(EVENTS)}")
        if not callable(handler):
            raise ValueError(f"handler={handler!r} is not allowed: expected a callable")
        handlers.append(handler)

    def off(self, event: str, handler: EventHandler) -> None:
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    def has_handlers(self, event: str) -> bool:
        return bool(self._handlers.get(event))

    def attach(self, task_group: anyio.abc.TaskGroup | None) -> None:
        """Run coroutine handlers in `task_group` from now on (None detaches)."""
        self._task_group = task_group

    def emit(self, event: str, details: dict[str, Any]) -> None:
        for handler in tuple(self._handlers.get(event, ())):
            try:
                result = handler(details)
            except Exception:
                _log.exception("gateway.event_handler_failed", gateway_event=event)
                continue
            if inspect.isawaitable(result):
                self._schedule(event, result)

    def _schedule(self, event: str, awaitable: Awaitable[object]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                _log.exception("gateway.event_handler_failed", gateway_event=event)

        if self._task_group is not None:
            self._task_group.start_soon(run)
        else:
            # No task group: nothing may run it later, so close it with a log
            # line rather than leave a never-awaited coroutine behind.
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            _log.warning(
                "gateway.event_handler_dropped", gateway_event=event, reason="no task group"
            )
