"""Shared circuits: every replica's breaker of a route follows the others',
so that N replicas open, probe and close a route's circuit as one gateway.

The protocol
------------

State. A route's breaker carries `(generation, state)`, with the reset
deadline (wall clock) and the backoff count `reopens` when OPEN. A replica's
own transitions advance its generation by one; `BreakerCore.adopt` takes a
peer's state only when its `(generation, rank)` is higher (rank: DISABLED <
CLOSED < HALF_OPEN < OPEN < FORCED_OPEN), so replicas converge and a tie goes
to the more cautious state (rule 9 of `meshgate.resilience.breaker_core`).

1. Transitions. Each transition a replica's breaker makes *by itself* (a
   trip, a probe's verdict, an operator's action) goes out as a
   `CircuitEvent` on ``mesh.events.circuit.<route>`` (`CircuitBroadcaster`).
   Transitions made by adopting a peer's event are not published again: the
   event already reached everyone, and echoes would only add traffic.
2. Adoption. A replica ignores its own events, and offers every other CLOSED,
   OPEN, FORCED_OPEN or DISABLED to its breaker's `adopt`. An adopted OPEN
   rejects until the very deadline of the replica that opened it.
3. One probe. When a circuit opens at generation `g`, the replica that
   probes is `probing_replica(route, g, live replicas)` (rendezvous hashing
   over the presence table, this replica included), the same on every
   replica that sees the same live set. Every other replica holds its breaker
   OPEN for `probe_grace` seconds past the deadline (`defer_probe`, rule 10
   of the breaker). The prober's first request at or after the deadline
   moves it to HALF_OPEN at `g + 1` and is the probe; HALF_OPEN is published
   but never adopted (it means "I am probing"): a replica that is OPEN
   extends its hold by `probe_grace` from then instead. The probe's verdict
   is CLOSED or OPEN (reopens + 1, a new deadline) at `g + 2`, which every
   replica adopts, since `g + 2` beats the `g` they hold.
4. Fallback. If the prober has no traffic, has gone, or its probe outlasts
   the hold, the holds run out and the next request on any replica probes
   (step 3 from that replica). Two verdicts of one generation settle by rank:
   OPEN wins.
5. Joining. Before it subscribes to anything else, a starting replica asks
   ``mesh.control.circuits`` (request/reply, one replica of the queue group
   answers) for every breaker's snapshot, CLOSED ones included, and adopts
   them: it starts from the cluster's state and generations rather than from
   zero. Without an answer (first replica, or the bus is slow) it starts on
   its own and catches up at the next transition.
6. Partitions. A replica that missed transitions holds an older generation:
   it adopts the next transition it hears; meanwhile its own breaker guards it
   (it trips or probes on its own evidence), and its verdicts are adopted
   by the others only if newer. Nothing is retried or re-published.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import anyio.abc
import msgspec
import structlog

from gateway_node.circuit_protocol import PeerMove, peer_move, probing_replica
from gateway_node.presence import PeerTable
from gateway_node.publishers import CircuitBroadcaster
from meshgate.bus.errors import BusError, NoRespondersError
from meshgate.bus.messages import (
    CircuitEvent,
    CircuitStatus,
    CircuitStatusReply,
    CircuitStatusRequest,
)
from meshgate.bus.protocol import MessageBus, Subscription
from meshgate.gateway.route_runtime import RouteRuntime
from meshgate.gateway.server import GatewayServer
from meshgate.resilience.breaker_core import BreakerSnapshot, CircuitState

log = structlog.get_logger("meshgate.gateway")

CONTROL_QUEUE = "gateway-circuits"
"""Queue group of the replicas answering ``mesh.control.circuits``: one answers."""


class CircuitSync:
    """Keeps this replica's breakers in step with its peers' (see the module
    docstring). Register `on_transition` as the gateway's circuit hook in
    place of the broadcaster's, and run `run` in the replica's task group.

    >>> async def share_circuits(bus, gateway, peers) -> None:
    ...     circuits = CircuitSync(bus, gateway, "gw-1", peers, CircuitBroadcaster(bus, "gw-1"))
    ...     gateway.add_circuit_hook(circuits.on_transition)
    ...     async with anyio.create_task_group() as tg:
    ...         tg.start_soon(circuits.broadcaster.run)
    ...         await tg.start(circuits.run)
    """

    def __init__(
        self,
        bus: MessageBus,
        gateway: GatewayServer,
        replica_id: str,
        peers: PeerTable,
        broadcaster: CircuitBroadcaster,
        *,
        probe_grace: float = 2.0,
        catch_up_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._gateway = gateway
        self.replica_id = replica_id
        self._peers = peers
        self.broadcaster = broadcaster
        self.probe_grace = probe_grace
        self._catch_up_timeout = catch_up_timeout
        self._clock = clock
        self._wall_clock = wall_clock
        # Set while a peer's state is being adopted: the transitions that
        # `adopt` makes are not this replica's to publish (step 1).
        self._adopting = False

    # -- this replica's transitions ------------------------------------------------

    def on_transition(
        self, runtime: RouteRuntime, from_state: CircuitState, to_state: CircuitState
    ) -> None:
        """The gateway's circuit hook: publish own transitions, hold the probe
        of a circuit that another replica probes (step 3)."""
        if self._adopting:
            return
        self.broadcaster.on_transition(runtime, from_state, to_state)
        if to_state is CircuitState.OPEN:
            self._hold_unless_prober(runtime)

    def live_replicas(self) -> set[str]:
        """The replicas that share circuits now: the presence table's, and this one."""
        return {p.replica_id for p in self._peers.live(self._clock())} | {self.replica_id}

    def _hold_unless_prober(self, runtime: RouteRuntime) -> None:
        breaker = runtime.breaker
        if breaker is None or breaker.state is not CircuitState.OPEN:
            return
        prober = probing_replica(runtime.name, breaker.generation, self.live_replicas())
        if prober != self.replica_id:
            breaker.defer_probe(breaker.open_until + self.probe_grace)
            log.debug(
                "circuit.probe_left_to_peer",
                route=runtime.name,
                prober=prober,
                generation=breaker.generation,
            )

    # -- peers' transitions ------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the peers' transitions, after catching up with their current
        states (step 5), until cancelled; `task_status.started()` once caught up."""
        bus = self._bus
        subscriptions: list[Subscription] = []
        try:
            subscriptions.append(
                await bus.subscribe(bus.subjects.all_circuit_events, CircuitEvent, self._on_event)
            )
            await self._catch_up()
            subscriptions.append(
                await bus.serve(
                    bus.subjects.circuit_control,
                    CircuitStatusRequest,
                    self._answer,
                    queue=CONTROL_QUEUE,
                )
            )
            task_status.started()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for subscription in subscriptions:
                    await subscription.unsubscribe()

    async def _on_event(self, event: CircuitEvent) -> None:
        if event.replica == self.replica_id or event.instance is not None:
            return
        self._offer(
            event.route,
            event.to_state,
            event.generation,
            event.reopens,
            event.reset_deadline,
            event.replica,
        )

    async def _catch_up(self) -> None:
        bus = self._bus
        request = CircuitStatusRequest(replica=self.replica_id)
        try:
            reply = await bus.request(
                bus.subjects.circuit_control,
                request,
                CircuitStatusReply,
                timeout=self._catch_up_timeout,
            )
        except NoRespondersError:
            log.debug("circuit.catch_up_skipped", reason="no other replica")
            return
        except BusError as error:
            log.warning("circuit.catch_up_failed", error=str(error))
            return
        for status in reply.circuits:
            self._offer(
                status.route,
                status.state,
                status.generation,
                status.reopens,
                status.reset_deadline,
                reply.replica,
            )
        log.info("circuit.caught_up", peer=reply.replica, circuits=len(reply.circuits))

    async def _answer(self, request: CircuitStatusRequest) -> CircuitStatusReply:
        now, wall_now = self._clock(), self._wall_clock()
        circuits = []
        for runtime in self._gateway.runtimes():
            if runtime.breaker is None:
                continue
            snapshot = runtime.breaker.snapshot(now, wall_now)
            circuits.append(
                CircuitStatus(
                    route=runtime.name,
                    state=snapshot.state.value,
                    generation=snapshot.generation,
                    reopens=snapshot.reopens,
                    reset_deadline=snapshot.reset_deadline,
                )
            )
        return CircuitStatusReply(replica=self.replica_id, circuits=tuple(circuits))

    def _offer(
        self,
        route: str,
        state: str,
        generation: int,
        reopens: int,
        reset_deadline: float | None,
        peer: str,
    ) -> None:
        """Steps 2 and 3 for one peer state of `route`."""
        runtime = self._gateway.route_runtime(route)
        breaker = None if runtime is None else runtime.breaker
        if runtime is None or breaker is None:
            return
        try:
            remote = BreakerSnapshot(
                name=breaker.name,
                state=CircuitState(state),
                generation=generation,
                reopens=reopens,
                reset_deadline=reset_deadline,
            )
        except (ValueError, msgspec.ValidationError) as error:
            log.warning("circuit.peer_state_invalid", route=route, peer=peer, error=str(error))
            return
        now, wall_now = self._clock(), self._wall_clock()
        move = peer_move(breaker.snapshot(now, wall_now), remote)
        if move is PeerMove.WAIT_FOR_PROBE:
            breaker.defer_probe(now + self.probe_grace)
            log.debug("circuit.waiting_for_probe", route=route, prober=peer)
            return
        if move is PeerMove.IGNORE:
            return
        before = breaker.state
        self._adopting = True
        try:
            adopted = breaker.adopt(remote, now, wall_now)
        finally:
            self._adopting = False
        if adopted:
            log.info(
                "circuit.adopted",
                route=route,
                peer=peer,
                from_state=before.value,
                to_state=remote.state.value,
                generation=remote.generation,
            )
            self._hold_unless_prober(runtime)
