"""Traffic management on the cluster: products mirrored to analytics-service,
the payments rate limit (429 with RateLimit headers), and the payments
breaker opened on one replica and adopted by the others (circuits are shared
over the bus), then closed again."""

from __future__ import annotations

import time

import anyio

from meshgate.cluster_tour.context import HEALTHY_KNOBS, Tour, TourError, tally

PRODUCTS = 20
# The breaker opens after 3 failures; a few more in case one is retried.
FAILING_CALLS = 6
BURST = 60
RECOVERY_SECONDS = 25.0  # the breaker's reset_timeout (15 s) plus a probe's margin


async def play(tour: Tour) -> None:
    """Mirror, then breaker (before the burst spends the rate limit), then burst."""
    await _mirror(tour)
    await _shared_circuit(tour)
    await _rate_limit(tour)


async def _mirror(tour: Tour) -> None:
    tour.say("products → product-service, 50% mirrored to analytics-service (fire and forget)")
    analytics = (await tour.instances("analytics-service"))[0]
    before = (await tour.stats(analytics))["requests"]
    codes = [
        str((await tour.http.get(f"{tour.gateways[0]}/api/products/{i}")).status_code)
        for i in range(PRODUCTS)
    ]
    await anyio.sleep(1.0)  # the copies are sent after the client's answer
    mirrored = (await tour.stats(analytics))["requests"] - before
    tour.say(
        f"  {PRODUCTS} product requests → {tally(codes)}; analytics-service got {mirrored} copies"
    )
    if mirrored == 0:
        raise TourError("analytics-service received no mirrored copy")


async def _shared_circuit(tour: Tour) -> None:
    first, last = tour.gateways[0], tour.gateways[-1]
    payments = await tour.instances("payment-service")
    tour.say("payments: payment-service fails every request (knob error_rate 1.0)")
    for instance in payments:
        await tour.set_knobs(instance, error_rate=1.0)
    try:
        codes = [
            str((await tour.http.get(f"{first}/api/payments/{i}")).status_code)
            for i in range(FAILING_CALLS)
        ]
        tour.say(f"  {FAILING_CALLS} payments through {first} → {', '.join(codes)}")
        await anyio.sleep(0.3)  # the transition crosses the bus in milliseconds
        other = await tour.http.get(f"{last}/api/payments/1")
        error = other.json().get("error") if other.status_code >= 400 else None
        tour.say(f"  then through {last} → {other.status_code} {error}")
        if other.status_code != 503 or error != "circuit_open":
            raise TourError(
                f"the other replica answered {other.status_code} {error}, not circuit_open"
            )
    finally:
        for instance in payments:
            await tour.set_knobs(instance, **HEALTHY_KNOBS)
    await _close_circuit(tour, last)


async def _close_circuit(tour: Tour, gateway: str) -> None:
    """Service restored: reset the breaker by hand, and wait for every replica
    to serve again (one reset, a shared probe after reset_timeout, or both)."""
    await tour.http.post(f"{tour.admin}/admin/circuits?route=payments&action=reset")
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_SECONDS:
        if (await tour.http.get(f"{gateway}/api/payments/1")).status_code == 200:
            tour.say(
                f"  knob restored; {gateway} serves payments again after "
                f"{time.monotonic() - started:.1f}s"
            )
            return
        await anyio.sleep(0.5)
    raise TourError(f"payments through {gateway} did not recover in {RECOVERY_SECONDS:g}s")


async def _rate_limit(tour: Tour) -> None:
    tour.say(f"payments: a burst of {BURST} requests against 50 a minute per client (cluster-wide)")
    codes: list[str] = []
    limited = None
    for i in range(BURST):
        reply = await tour.http.get(f"{tour.gateways[0]}/api/payments/{i}")
        codes.append(str(reply.status_code))
        if reply.status_code == 429 and limited is None:
            limited = reply
    tour.say(f"  → {tally(codes)}")
    if limited is None:
        raise TourError("no request of the burst was rate limited")
    headers = {
        k: v for k, v in limited.headers.items() if k.lower().startswith(("ratelimit", "retry"))
    }
    tour.say(f"  a 429's headers: {headers}")
    tour.say("  (the bucket refills within a minute)")
