"""Cluster-wide rate limits: each replica admits its share of a route's
limit, so that N replicas together admit the limit, however clients spread
over them.

Every `interval` seconds a replica

1. measures, per rate-limited route, the requests its limit checked since
   the last round (`KeyedRateLimit.checked`), as a rate;
2. publishes it for limits keyed by ``route`` as a `RateDemand` on
   ``mesh.ratelimit.<route>`` (zero demand too: it says "alive, idle");
3. takes its share: for ``route`` limits, `quota_share.allocate` over the live
   replicas (presence table, plus any replica whose demand was heard within
   three intervals) and their last demands; for limits keyed per client
   (``ip``, a header), `quota_share.equal_share`, ``1/n`` of the per-key
   allowance, since replicas cannot see each other's keys;
4. rescales the route's `KeyedRateLimit` when the permits per window change
   (the used permits carry over, so a rescale is no burst).

Start and joins. A starting replica does not know its peers yet, so a
``route`` limit takes only the floor share (`floor_fraction` of the limit)
until `settle` seconds have passed, in which every peer's demand report (each
`interval`) arrives; a per-client limit keeps its whole per-key allowance
meanwhile (a client reaching a new replica in its first second may get up to
one extra allowance). A route added or replaced at runtime gets the share
last computed for its name at once, before its first request, rather than a
fresh full allowance.

Bus cut. While the bus is down, and for `settle` seconds after it returns
(peers' presence and reports must arrive again before the live set means
anything), a replica keeps the shares it had. Replicas that agree on the live
set and the demands admit at most the limit; while a replica joins, the others
shrink within one interval, so the cluster admits at most the limit plus one
replica's share meanwhile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import anyio
import structlog

from gateway_node.presence import PeerTable
from meshgate.bus.messages import RateDemand
from meshgate.bus.protocol import MessageBus
from meshgate.gateway.keyed_rate_limit import KeyedRateLimit
from meshgate.gateway.quota_share import DemandTable, allocate, equal_share
from meshgate.gateway.route_runtime import RouteRuntime
from meshgate.gateway.server import GatewayServer

log = structlog.get_logger("meshgate.gateway")

# The smallest scale `KeyedRateLimit.rescale` is given: it refuses 0, and a
# share that rounds to nothing still admits one request per window.
_MIN_SCALE = 1e-9


class RateShare:
    """This replica's shares of every route's rate limit (see the module docstring).

    >>> async def share_limits(bus, gateway, peers) -> None:
    ...     shares = RateShare(bus, gateway, "gw-1", peers)
    ...     async with anyio.create_task_group() as tg:
    ...         await tg.start(shares.run)   # before serving: limits start at their floor
    """

    def __init__(
        self,
        bus: MessageBus,
        gateway: GatewayServer,
        replica_id: str,
        peers: PeerTable,
        *,
        interval: float = 0.5,
        floor_fraction: float = 0.1,
        settle: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._gateway = gateway
        self.replica_id = replica_id
        self._peers = peers
        self.interval = interval
        self.floor_fraction = floor_fraction
        self.settle = 2.0 * interval if settle is None else settle
        self._clock = clock
        self._wall_clock = wall_clock
        # Demands in requests per second, whatever each limit's window.
        self._demands = DemandTable(ttl=3.0 * interval)
        # route -> (its limit object, `checked` at the last round, when)
        self._counted: dict[str, tuple[KeyedRateLimit, int, float]] = {}
        # route -> the scale last given, for a route rebuilt under the same name
        self._scales: dict[str, float] = {}
        self._frozen_until = math.inf  # until the first settle has passed
        self._was_connected = True

    # -- the loop --------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Share the limits until cancelled; `task_status.started()` once every
        limit holds its starting share, so that start this before serving."""
        bus = self._bus
        self.start()
        try:
            subscription = await bus.subscribe(
                bus.subjects.all_rate_demand, RateDemand, self.on_demand
            )
            try:
                task_status.started()
                while True:
                    await anyio.sleep(self.interval)
                    await self.share_round()
            finally:
                with anyio.CancelScope(shield=True):
                    await subscription.unsubscribe()
        finally:
            self._gateway.off("route:added", self._on_route_added)

    def start(self) -> None:
        """Give every limit its starting share, and each route added later the
        share last computed for its name (what `run` does first)."""
        now = self._clock()
        self._frozen_until = now + self.settle
        for runtime in self._gateway.runtimes():
            if runtime.rate_limit is not None:
                self._start_share(runtime)
                self._count(runtime, now)
        self._gateway.on("route:added", self._on_route_added)

    async def on_demand(self, demand: RateDemand) -> None:
        """A peer's report (what `run` subscribes to ``mesh.ratelimit.*``)."""
        if demand.replica == self.replica_id or demand.window <= 0:
            return
        per_second = demand.demand / demand.window
        self._demands.heard(demand.route, demand.replica, per_second, self._clock())

    async def share_round(self) -> None:
        """One round: measure, publish, rescale (steps 1 to 4)."""
        now = self._clock()
        connected = self._bus.is_connected
        if connected and not self._was_connected:
            # Back on the bus: the live set is stale until peers speak again.
            self._frozen_until = now + self.settle
            log.info("ratelimit.bus_back", frozen_for=self.settle)
        elif not connected and self._was_connected:
            log.warning("ratelimit.shares_frozen", reason="bus disconnected")
        self._was_connected = connected
        live = self._live(now)
        self._demands.forget(live)
        frozen = not connected or now < self._frozen_until
        for runtime in self._gateway.runtimes():
            plan = runtime.rate_limit
            if plan is None:
                continue
            rate = self._count(runtime, now)
            limit = plan.limit
            if plan.key_kind == "route":
                self._demands.heard(runtime.name, self.replica_id, rate, now)
                if connected:
                    await self._publish(runtime.name, rate, limit.window)
                if frozen:
                    continue
                per_second = limit.max / limit.window
                demands = self._demands.demands(runtime.name, live, now)
                shares = allocate(per_second, demands, floor_fraction=self.floor_fraction)
                scale = shares[self.replica_id] / per_second
            else:
                if frozen:
                    continue
                scale = equal_share(1.0, len(live))
            self._rescale(runtime, scale, now)

    # -- parts ------------------------------------------------------------------------

    def _live(self, now: float) -> list[str]:
        replicas = {p.replica_id for p in self._peers.live(now)}
        replicas.update(self._demands.reporters(now))
        replicas.add(self.replica_id)
        return sorted(replicas)

    def _count(self, runtime: RouteRuntime, now: float) -> float:
        """Requests per second that `runtime`'s limit checked since the last count."""
        plan = runtime.rate_limit
        assert plan is not None
        limit = plan.limit
        previous = self._counted.get(runtime.name)
        self._counted[runtime.name] = (limit, limit.checked, now)
        if previous is None:
            return 0.0
        counted_limit, checked, then = previous
        if counted_limit is not limit:  # rebuilt: counts start again from 0
            checked = 0
        elapsed = now - then
        return (limit.checked - checked) / elapsed if elapsed > 0 else 0.0

    def _start_share(self, runtime: RouteRuntime) -> None:
        plan = runtime.rate_limit
        if plan is None:
            return
        scale = self._scales.get(runtime.name)
        if scale is None:
            # Peers unknown yet: the floor, lest N starting replicas admit N limits.
            scale = self.floor_fraction if plan.key_kind == "route" else 1.0
        self._rescale(runtime, scale, self._clock())

    def _on_route_added(self, details: dict[str, Any]) -> None:
        runtime = self._gateway.route_runtime(str(details.get("route")))
        if runtime is not None:
            self._start_share(runtime)

    def _rescale(self, runtime: RouteRuntime, scale: float, now: float) -> None:
        plan = runtime.rate_limit
        assert plan is not None
        limit = plan.limit
        scale = min(1.0, max(_MIN_SCALE, scale))
        self._scales[runtime.name] = scale
        permits = max(1, math.floor(limit.max * scale))
        if permits == limit.effective_max:
            return  # the same permits per window: nothing to rebuild
        limit.rescale(scale, now)
        log.debug("ratelimit.rescaled", route=runtime.name, scale=round(scale, 4), max=permits)

    async def _publish(self, route: str, rate: float, window: float) -> None:
        demand = RateDemand(
            route=route,
            replica=self.replica_id,
            demand=rate * window,
            window=window,
            interval=self.interval,
            at=self._wall_clock(),
        )
        try:
            await self._bus.publish(self._bus.subjects.rate_demand(route), demand)
        except Exception as error:  # the bus may be away: keep the share we have
            log.warning("ratelimit.publish_failed", route=route, error=repr(error))
