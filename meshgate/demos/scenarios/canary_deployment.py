"""Canary deployment: order-service 2.0.0 rolled out over 1.0.0 through the
gateway, step by step, and promoted; then 2.1.0 rolled out over 2.0.0,
which turns bad half-way and is rolled back on statistical evidence.

Real services run on loopback ports and register in a memory registry; the
gateway serves on a free port and httpx sends it real requests. The route's
canary is the reference's (steps 10 → 25 → 50 → 75 → 100, a 5% error
threshold, at least 10 canary requests before a judgement) with the step
interval cut from 15 s to 0.25 s so the demo can wait it out.

Each tick sends a batch of orders, then calls ``engine.evaluate()`` on the
gateway's own `CanaryEngine` once the step interval has passed: what
``gateway.start_canaries()`` does on a timer (and the canary controller
does for a whole cluster). Driving it here keeps every judgement on the
same requests on every run. Two kinds of client send the orders:
anonymous ones, each request drawn afresh by the route's seeded random
generator, and signed-in users, who stick to one side by their
``X-User-Id`` header while the weights hold, and only ever move from the
stable to the canary as the canary's weight grows. Testers force a side
with ``X-Canary: always`` or ``never``.

Run it: ``meshgate demo canary-deployment``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from meshgate.demos.backends import ServiceFleet, ServiceSpec
from meshgate.demos.gateway_kit.caller import Caller, served_by
from meshgate.demos.gateway_kit.event_log import EventLog
from meshgate.demos.gateway_kit.quiet_logs import warnings_only
from meshgate.demos.gateway_kit.seeded_routes import seed_routes
from meshgate.demos.scenarios.canary_evidence import describe_verdict, evidence_lines
from meshgate.discovery import MemoryRegistryBackend
from meshgate.gateway import CanaryEngine, GatewayServer

SEED = 10
ROUTE = "/api/orders/**"
STEP_INTERVAL = 0.25
ANONYMOUS_ORDERS = 60
USERS = ("ana", "dev", "finn", "omar", "hugo", "ben", "rosa", "mo", "lena", "jon", "kai", "emma")
BAD_ERROR_RATE = 0.2

ORDER_SERVICES = (
    ServiceSpec(service="order-service", instance="orders-1.0.0", version="1.0.0"),
    ServiceSpec(service="order-service", instance="orders-2.0.0", version="2.0.0"),
    ServiceSpec(service="order-service", instance="orders-2.1.0", version="2.1.0"),
)


def orders_route(stable: str, canary: str) -> dict[str, Any]:
    """The orders route rolling `canary` out over `stable`. Instances are
    picked by their `metadata.version`, the canary's default filter."""
    return {
        "path": ROUTE,
        "service_name": "order-service",
        "strip_prefix": "/api/orders",
        "canary": {
            "stable": {"version": stable, "weight": 90},
            "canary": {"version": canary, "weight": 10},
            "promotion": {
                "strategy": "error-rate",
                "error_threshold": 5,
                "evaluation_window": "30s",
                "min_requests": 10,
                "steps": [10, 25, 50, 75, 100],
                "step_interval": STEP_INTERVAL,
                "auto_promote": True,
                "auto_rollback": True,
            },
            # Signed-in users stick to a side by this header; a request
            # without it is drawn afresh (the demo's clients all share one
            # address, so sticking by IP would put every one on one side).
            "sticky": "header:X-User-Id",
        },
    }


CONFIG: dict[str, Any] = {
    "middleware": {"logging": False},
    "routes": [orders_route("1.0.0", "2.0.0")],
}


BeforeTick = Callable[["Rollout"], Awaitable[None]]


class Rollout:
    """Sends each tick's orders through the gateway and judges the canary."""

    def __init__(self, gateway: GatewayServer, caller: Caller) -> None:
        self.gateway = gateway
        self.caller = caller
        self.orders = 0
        # Which versions each user was served, in order, for the stickiness check.
        self.seen: dict[str, list[str]] = {user: [] for user in USERS}
        self.events_shown = 0

    @property
    def engine(self) -> CanaryEngine:
        # Looked up each time: replacing the route starts a new engine.
        return self.gateway.canaries()[ROUTE]

    async def order(self, headers: dict[str, str] | None = None) -> httpx.Response:
        self.orders += 1
        return await self.caller.call(
            "GET", f"/api/orders/{self.orders}", headers=headers, quiet=True
        )

    async def tick(self) -> str:
        """One batch of orders, then `evaluate()` once the step is due; prints
        both and returns the decision."""
        engine = self.engine
        canary = engine.config.canary.version
        served: Counter[str] = Counter()
        for _ in range(ANONYMOUS_ORDERS):
            served[_version_and_status(await self.order())] += 1
        on_canary = []
        for user in USERS:
            backend = served_by(await self.order({"X-User-Id": user}))
            version = backend["version"] if backend else "-"
            self.seen[user].append(version)
            if version == canary:
                on_canary.append(user)
        tally = ", ".join(f"{name} ×{count}" for name, count in sorted(served.items()))
        everyone = len(on_canary) == len(USERS)
        users = f"all {len(USERS)}" if everyone else ", ".join(on_canary) or "none"
        print(f"  at {engine.canary_weight:g}%: {ANONYMOUS_ORDERS} orders → {tally}")
        print(f"    signed-in users on {canary}: {users}")
        status = engine.get_status()
        # Judge only once the step is due, so each verdict is on a full step's traffic.
        due_in = status.last_step_at + STEP_INTERVAL - self.gateway.clock()
        await anyio.sleep(max(0.01, due_in))
        was = engine.canary_weight
        decision = engine.evaluate()
        reason = engine.get_status().last_reason
        print(f"    evaluate() → {decision}" + ("" if decision != "hold" else f": {reason}"))
        self.print_verdicts(was, engine.config.promotion.error_threshold)
        return decision

    def print_verdicts(self, was: float, error_threshold: float) -> None:
        events = self.caller.events
        events.take()  # the log's own one-line form: printed here in full instead
        for event, details in events.seen[self.events_shown :]:
            for line in describe_verdict(event, details, was=was):
                print(f"    {line}")
            if event == "canary:rollback":
                for line in evidence_lines(details, error_threshold=error_threshold):
                    print(f"      {line}")
        self.events_shown = len(events.seen)

    async def run_until_done(self, *, before_tick: BeforeTick | None = None) -> None:
        """Ticks until the rollout is promoted or rolled back; `before_tick`
        may change the world (a service's knobs) between ticks."""
        while self.engine.state == "active":
            if before_tick is not None:
                await before_tick(self)
            await self.tick()

    def users_only_moved_forward(self, stable: str) -> bool:
        """True when no user went back to `stable` after reaching the canary."""
        for versions in self.seen.values():
            reached = [index for index, version in enumerate(versions) if version != stable]
            if reached and stable in versions[reached[0] :]:
                return False
        return True


def _version_and_status(reply: httpx.Response) -> str:
    backend = served_by(reply)
    if backend is None:
        return f"gateway {reply.status_code}"
    failed = "" if reply.status_code < 500 else f" {reply.status_code}"
    return f"{backend['version']}{failed}"


async def overrides(caller: Caller) -> None:
    print("1. Testers pick a side with X-Canary, whatever the weights; a signed-in")
    print("   user sticks to the side X-User-Id falls on.")
    await caller.call("GET", "/api/orders/t1", headers={"X-Canary": "always"})
    await caller.call("GET", "/api/orders/t2", headers={"X-Canary": "never"})
    for user in ("ana", "ana", "ben", "ben"):
        await caller.call("GET", f"/api/orders/{user}", headers={"X-User-Id": user})


async def healthy_rollout(rollout: Rollout) -> None:
    print()
    orders, users, interval = ANONYMOUS_ORDERS, len(USERS), STEP_INTERVAL
    print(f"2. A healthy canary. Each tick: {orders} anonymous orders and one from each of")
    print(f"   {users} signed-in users; then evaluate(), once {interval:g} s have passed since")
    print("   the last step.")
    await rollout.run_until_done()
    status = rollout.engine.get_status()
    print(f"  rollout: {status.state}, {status.canary_version} at {status.canary_weight:g}%")
    moved = rollout.users_only_moved_forward("1.0.0")
    print(f"  signed-in users only ever moved from 1.0.0 to 2.0.0: {moved}")


async def bad_rollout(rollout: Rollout, fleet: ServiceFleet) -> None:
    print()
    print("3. The next release: 2.1.0 over 2.0.0. add_route(..., replace=True) starts a")
    print("   new rollout at 10%.")
    rollout.gateway.add_route(orders_route("2.0.0", "2.1.0"), replace=True)
    seed_routes(rollout.gateway, SEED + 1)  # the new route has a fresh generator
    rollout.events_shown = len(rollout.caller.events.seen)
    bad = fleet["orders-2.1.0"]

    async def turn_bad_after_first_step(current: Rollout) -> None:
        if current.engine.current_step >= 1 and bad.error_rate == 0:
            bad.error_rate = BAD_ERROR_RATE
            print(f"  -- 2.1.0 turns bad: {BAD_ERROR_RATE:.0%} of its requests now fail --")

    await rollout.run_until_done(before_tick=turn_bad_after_first_step)
    status = rollout.engine.get_status()
    reached = rollout.engine.config.promotion.steps[status.current_step]
    print(
        f"  rollout: {status.state}, {status.canary_version} at {status.canary_weight:g}% "
        f"(it had reached {reached:g}%); {status.stable_version} serves everyone"
    )
    served: Counter[str] = Counter()
    for headers in ({"X-Canary": "always"}, {"X-User-Id": "hugo"}, None):
        reply = await rollout.order(headers)
        served[_version_and_status(reply)] += 1
    shown = ", ".join(f"{name} ×{count}" for name, count in served.items())
    print(f"  then X-Canary: always, hugo (on 2.1.0 until now) and an anonymous order: {shown}")


async def main() -> None:
    registry = MemoryRegistryBackend()
    with warnings_only():
        async with ServiceFleet(ORDER_SERVICES, registry) as fleet:
            print("order-service instances: " + ", ".join(s.name for s in fleet))
            gateway = GatewayServer.from_config(CONFIG, registry)
            seed_routes(gateway, SEED)
            promotion = gateway.canaries()[ROUTE].config.promotion
            print(
                f"route {ROUTE}: canary from 10%, steps "
                + " → ".join(f"{step:g}" for step in promotion.steps)
                + f", error threshold {promotion.error_threshold:g}%, "
                f"min {promotion.min_requests} requests, step interval {STEP_INTERVAL:g} s"
            )
            events = EventLog(gateway, ("canary:step", "canary:promote", "canary:rollback"))
            async with gateway.running(listen="127.0.0.1:0") as [(host, port)]:
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                    caller = Caller(http, events)
                    print()
                    await overrides(caller)
                    events.take()  # printed by the ticks, with their evidence
                    rollout = Rollout(gateway, caller)
                    await healthy_rollout(rollout)
                    await bad_rollout(rollout, fleet)
                    events.take()


if __name__ == "__main__":
    anyio.run(main)
