"""`EventLog`: the gateway's events, collected as they happen and printed
where they belong in the demo's account — under the request that caused
them, or when a demo waits for one (a canary's verdict comes from the
gateway's own evaluation loop, not from a request)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio

from meshgate.gateway import GatewayServer
from meshgate.gateway.events import EventHandler

SHOWN_EVENTS = (
    "circuit:open",
    "circuit:half-open",
    "circuit:close",
    "canary:step",
    "canary:promote",
    "canary:rollback",
    "route:added",
    "route:removed",
)


def describe_event(event: str, details: dict[str, Any]) -> str:
    """One event as a line: its name and the details a reader needs."""
    route = details.get("route", "?")
    if event.startswith("circuit:"):
        text = f"{event} route={route} {details['from']} → {details['to']}"
        if details.get("reset_in") is not None:
            text += f", probes again in {details['reset_in']:g}s"
        return text
    if event.startswith("canary:"):
        canary = details["stats"]["canary"]
        return (
            f"{event} route={route} canary {details['canary_version']} now at "
            f"{details['canary_weight']:g}% (it had {canary['errors']} errors in "
            f"{canary['requests']} requests: {details['reason']})"
        )
    change = f" ({details['change']})" if details.get("change") not in (None, "added") else ""
    return f"{event} route={route}{change}"


class EventLog:
    """Collects `events` of `gateway` until `take` hands them over."""

    def __init__(self, gateway: GatewayServer, events: Iterable[str] = SHOWN_EVENTS) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._pending: list[str] = []
        self._arrived = anyio.Event()
        for event in events:
            gateway.on(event, self._recorder(event))

    def _recorder(self, event: str) -> EventHandler:
        def record(details: dict[str, Any]) -> None:
            self.seen.append((event, details))
            self._pending.append(describe_event(event, details))
            self._arrived.set()

        return record

    def take(self) -> list[str]:
        """The events since the last `take`, as lines, oldest first."""
        lines, self._pending = self._pending, []
        return lines

    async def wait_for(self, event: str, *, within: float) -> bool:
        """Wait until `event` has been seen (now or before); False if it has
        not come `within` seconds."""
        with anyio.move_on_after(within):
            while not any(name == event for name, _ in self.seen):
                self._arrived = anyio.Event()
                await self._arrived.wait()
            return True
        return False
