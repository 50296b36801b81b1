"""Canary deployment on the cluster: the orders rollout (1.0.0 → 2.0.0) as the
admin API shows it, ``X-Canary: always`` reaching 2.0.0, pause and resume
through the cluster's canary controller, then a canary turned bad and rolled
back by the controller on the evidence of the traffic.

A rollback ends the rollout (`meshgate up` again starts a fresh one), so a
second tour finds it finished and only shows its status."""

from __future__ import annotations

import time
from typing import Any

import anyio

from meshgate.cluster_tour.context import HEALTHY_KNOBS, Tour, TourError, served_by, tally

ROUTE = "orders"
BAD_ERROR_RATE = 0.3
# The controller judges on the last 30 s and needs 20 canary requests;
# a steady trickle keeps the window full until it decides.
ROLLBACK_SECONDS = 40.0
BATCH = 10


def _weights(status: dict[str, Any]) -> str:
    return (
        f"{status['state']}: stable {status['stable_version']} {status['stable_weight']:g}%"
        f" / canary {status['canary_version']} {status['canary_weight']:g}%"
    )


async def play(tour: Tour) -> None:
    """Status, forced canary, pause/resume, then a rollback on evidence."""
    status = await tour.canary(ROUTE)
    tour.say(f"  {ROUTE} rollout: {_weights(status)}")
    if status["state"] in ("promoted", "rolled-back"):
        tour.say("  the rollout has finished; restart `meshgate up` for a fresh one")
        return
    forced = [await _order(tour, "always") for _ in range(5)]
    never = [await _order(tour, "never") for _ in range(5)]
    tour.say(f"  X-Canary: always → {tally(forced)};  X-Canary: never → {tally(never)}")
    for action in ("pause", "resume"):
        reply = await _act(tour, action)
        tour.say(f"  {action}: acted_by {reply['acted_by']} → {reply['state']}")
    await _roll_back_on_evidence(tour)


async def _order(tour: Tour, canary: str) -> str:
    reply = await tour.http.get(f"{tour.gateways[0]}/api/orders/42", headers={"X-Canary": canary})
    return served_by(reply)


async def _act(tour: Tour, action: str) -> dict[str, Any]:
    reply = await tour.http.post(f"{tour.admin}/admin/canaries?route={ROUTE}&action={action}")
    if reply.status_code != 200:
        raise TourError(f"{action} answered {reply.status_code}: {reply.text}")
    return dict(reply.json())


async def _roll_back_on_evidence(tour: Tour) -> None:
    canaries = await tour.instances("order-service")
    bad = [i for i in canaries if "canary" in i.tags]
    tour.say(
        f"  order-service 2.0.0 turns bad: knob error_rate {BAD_ERROR_RATE} on "
        f"{', '.join(i.id for i in bad)}"
    )
    for instance in bad:
        await tour.set_knobs(instance, error_rate=BAD_ERROR_RATE)
    try:
        status = await _drive_until_decided(tour)
    finally:
        for instance in bad:
            await tour.set_knobs(instance, **HEALTHY_KNOBS)
        # The route's breaker (5 failures) opens on the bad canary's errors
        # too; its 503s are why most of the traffic above is not 200.
        await tour.http.post(f"{tour.admin}/admin/circuits?route={ROUTE}&action=reset")
        tour.say("  knob restored, orders circuit reset")
    if status["state"] != "rolled-back":
        raise TourError(
            f"the controller did not roll back in {ROLLBACK_SECONDS:g}s: {_weights(status)}"
        )
    tour.say("  the controller rolled the canary back (see `meshgate events --kind canary`)")


async def _drive_until_decided(tour: Tour) -> dict[str, Any]:
    """Send canary traffic (the gateway counts every request per version, so
    the forced ones too) and print the weights whenever they change."""
    started = time.monotonic()
    shown = ""
    codes: list[str] = []
    status = await tour.canary(ROUTE)
    while time.monotonic() - started < ROLLBACK_SECONDS:
        for _ in range(BATCH):
            reply = await tour.http.get(
                f"{tour.gateways[0]}/api/orders/42", headers={"X-Canary": "always"}
            )
            codes.append(str(reply.status_code))
        status = await tour.canary(ROUTE)
        canary = status["stats"]["canary"]
        line = _weights(status)
        if line != shown:
            shown = line
            tour.say(
                f"  {time.monotonic() - started:4.1f}s  {line}  (window: canary "
                f"{canary['requests']} requests, {canary['error_rate']:.0f}% errors)"
            )
        if status["state"] == "rolled-back":
            break
        await anyio.sleep(0.5)
    tour.say(f"  canary traffic sent: {tally(codes)}")
    return status
