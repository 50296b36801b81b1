"""The replica's `CanaryControl` hook: an admin canary action becomes a
`ControlRequest` to the leading canary controller
(``mesh.control.canary.<route>``), which applies it, persists it and
broadcasts the weights every replica then follows.

No controller means no answer: the request finds no responders (none runs,
or the leader is gone and its standby does not lead yet), times out, or the
bus is down. The hook then returns None and the admin API acts on this
replica's engine alone, as an embedded gateway would.
"""

from __future__ import annotations

import structlog

from meshgate.bus.errors import BusUnavailableError, NoRespondersError, RequestTimeoutError
from meshgate.bus.messages import ControlAction, ControlReply, ControlRequest
from meshgate.bus.protocol import MessageBus
from meshgate.gateway.canary_control import CanaryControl

log = structlog.get_logger("meshgate.gateway")

CONTROL_TIMEOUT = 2.0
"""Seconds to wait for the controller: it answers from memory in
milliseconds, and an operator is waiting on the admin call."""


def bus_canary_control(bus: MessageBus, *, timeout: float = CONTROL_TIMEOUT) -> CanaryControl:
    """A hook that asks the controller on `bus` (see the module docstring).

    >>> async def wire(bus: MessageBus, gateway: "GatewayServer") -> None:
    ...     gateway.canary_control = bus_canary_control(bus)
    """

    async def ask(route: str, action: ControlAction) -> ControlReply | None:
        subject = bus.subjects.canary_control(route)
        request = ControlRequest(route=route, action=action)
        try:
            return await bus.request(subject, request, ControlReply, timeout=timeout)
        except NoRespondersError:
            return None  # no controller leads: the usual case without one, not worth a warning
        except (RequestTimeoutError, BusUnavailableError) as exc:
            log.warning(
                "canary.controller_unreachable",
                route=route,
                action=action,
                error=str(exc),
                fallback="replica",
            )
            return None

    return ask


__all__ = ["CONTROL_TIMEOUT", "bus_canary_control"]
