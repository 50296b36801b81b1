"""How a replica's admin API hands a canary action to the cluster.

With a canary controller running, promoting, rolling back, pausing or
resuming a canary on one replica alone would last only until the
controller's next broadcast puts the weights back. So `GatewayServer`
carries an optional `CanaryControl` hook: the node sets it to ask the
leading controller (``mesh.control.canary.<route>``), and the admin API
calls it first. It returns None when no controller answers — embedded mode,
or no controller leads — and the admin API acts on the replica's own engine.

This module holds the hook's type and the pure reading of a controller's
`ControlReply`; the bus request itself lives in ``gateway_node``.

>>> reply = ControlReply(ok=True, changed=True, state="paused", stable_weight=90.0,
...                      canary_weight=10.0, step=-1)
>>> controller_outcome(reply)
ControlOutcome(changed=True, state='paused', canary_weight=10.0, stable_weight=90.0, step=-1)
>>> controller_outcome(ControlReply(ok=False, code="invalid", error="finished"))
ControlRefusal(status=409, error='rollout_finished', message='finished')
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from meshgate.bus.messages import ControlAction, ControlReply
from meshgate.gateway.canary_status import RolloutState

CanaryControl = Callable[[str, ControlAction], Awaitable[ControlReply | None]]
"""Ask the cluster's canary controller to apply an action to a route's
rollout: its reply, or None when no controller answers (act locally)."""

ActedBy = Literal["controller", "replica"]
"""Who applied an admin canary action: the cluster's controller, or this
replica's engine alone."""


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    """The rollout after an action the controller applied."""

    changed: bool
    state: RolloutState
    canary_weight: float
    stable_weight: float
    step: int


@dataclass(frozen=True, slots=True)
class ControlRefusal:
    """A controller's refusal, as the admin API answers it."""

    status: int
    error: str
    message: str


# The controller's codes in the admin API's terms: the same error names the
# replica's own engine gives, so a client handles both paths alike.
_REFUSALS: dict[str, tuple[int, str]] = {
    "not_found": (404, "no_canary"),
    "invalid": (409, "rollout_finished"),
    "unavailable": (503, "controller_unavailable"),
    "forbidden": (403, "controller_forbidden"),
}


def controller_outcome(reply: ControlReply) -> ControlOutcome | ControlRefusal:
    """Read `reply`: the rollout after the action, or why it was refused."""
    if not reply.ok:
        status, error = _REFUSALS.get(reply.code or "", (502, "controller_error"))
        message = reply.error or f"the canary controller refused ({reply.code})"
        return ControlRefusal(status, error, message)
    if (
        reply.state is None
        or reply.canary_weight is None
        or reply.stable_weight is None
        or reply.step is None
    ):
        # A controller that says yes always reports the rollout; one that does
        # not is broken, and the operator must not read a guess as its state.
        return ControlRefusal(
            502, "controller_error", "the canary controller's reply lacks the rollout's state"
        )
    return ControlOutcome(
        changed=bool(reply.changed),
        state=reply.state,
        canary_weight=reply.canary_weight,
        stable_weight=reply.stable_weight,
        step=reply.step,
    )


__all__ = ["ActedBy", "CanaryControl", "ControlOutcome", "ControlRefusal", "controller_outcome"]
