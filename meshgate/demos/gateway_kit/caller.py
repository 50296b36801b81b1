"""`Caller`: sends a demo's requests through the gateway with httpx and
prints each as one line of the account — what was asked, the status, who
answered (service instance and version, from the demo backend's JSON) or
why the gateway answered itself — followed by the gateway events that the
request caused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from meshgate.demos.gateway_kit.event_log import EventLog


def served_by(reply: httpx.Response) -> dict[str, Any] | None:
    """The demo backend's account of itself, or None when the gateway answered."""
    try:
        body = reply.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "instance" in body else None


def describe(reply: httpx.Response, *, show_headers: Sequence[str] = ()) -> str:
    """`reply` in a few words: who served it, or the gateway's error."""
    backend = served_by(reply)
    if backend is not None:
        text = f"{backend['instance']} ({backend['service']} {backend['version']})"
        if "error" in backend:
            text += f" {backend['error']}"
    else:
        body = reply.json()
        text = f"gateway: {body.get('error')}"
    shown = [f"{name}: {reply.headers[name]}" for name in show_headers if name in reply.headers]
    if shown:
        text += "   " + ", ".join(shown)
    return text


class Caller:
    """Sends requests with `http` (whose base URL is the gateway) and prints them."""

    def __init__(self, http: httpx.AsyncClient, events: EventLog) -> None:
        self.http = http
        self.events = events

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        show_headers: Sequence[str] = (),
        quiet: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; print its line (unless `quiet`) and its events."""
        reply = await self.http.request(method, path, headers=headers, **kwargs)
        if not quiet:
            asked = " ".join(f"{k}: {v}" for k, v in (headers or {}).items())
            request = f"{method} {path}" + (f" [{asked}]" if asked else "")
            answer = describe(reply, show_headers=show_headers)
            print(f"  {request:<44} {reply.status_code}  {answer}")
        self.print_events()
        return reply

    def print_events(self) -> None:
        for line in self.events.take():
            print(f"      → event {line}")
