"""`run_gateway`: one gateway replica as a process — on the bus (instances
from the registry nodes, presence, metrics, circuit transitions) or
standalone (fixed upstreams only) — until SIGTERM or SIGINT, then a
graceful drain.
"""

from __future__ import annotations

import os
import socket
import time

import anyio
import anyio.abc
import structlog

from gateway_node.canary_control import bus_canary_control
from gateway_node.canary_follower import follow_canary_weights
from gateway_node.cluster_sync import run_cluster_sync
from gateway_node.presence import PeerTable, announce_presence, watch_presence
from gateway_node.publishers import CircuitBroadcaster, publish_metrics
from meshgate.bus.connection import Bus
from meshgate.bus.credentials import NatsCredentials
from meshgate.bus.errors import BusUnavailableError
from meshgate.bus.messages import Presence
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.gateway.config import GatewayConfig
from meshgate.gateway.server import GatewayServer
from meshgate.process_signals import stop_on_signal

log = structlog.get_logger("meshgate.gateway")

PRESENCE_INTERVAL = 2.0
PRESENCE_TTL = 3 * PRESENCE_INTERVAL


def default_replica_id() -> str:
    return f"gw-{socket.gethostname()}-{os.getpid()}"


def discovered_routes(config: GatewayConfig) -> list[str]:
    """Names of the routes that need the registry (a service or a mirror service)."""
    names = []
    for route in config.routes:
        mirror = route.traffic_policy.mirror if route.traffic_policy is not None else None
        if route.service_name is not None or (mirror is not None and mirror.service is not None):
            names.append(route.name)
    return names


async def run_gateway(
    config: GatewayConfig,
    *,
    nats_url: str | None,
    standalone: bool = False,
    credentials: NatsCredentials | None = None,
    replica_id: str | None = None,
    connect_timeout: float = 10.0,
) -> None:
    """Serve `config` until SIGTERM/SIGINT (or until cancelled).

    Standalone, the replica needs no bus, and refuses routes that need the
    registry (`ValueError` naming them). On the bus, it raises
    `BusUnavailableError` when NATS does not answer within `connect_timeout`.
    """
    replica_id = replica_id or config.replica_id or default_replica_id()
    if standalone:
        needing = discovered_routes(config)
        if needing:
            raise ValueError(
                "--standalone serves fixed upstreams only, but these routes name a service "
                f"to discover: {', '.join(needing)}"
            )
        gateway = GatewayServer(config)
        async with anyio.create_task_group() as tg:
            await tg.start(stop_on_signal, tg.cancel_scope, log, "gateway.stopping")
            await tg.start(_serve, gateway)
            log.info("gateway.started", replica=replica_id, mode="standalone")
        return

    url = nats_url or config.nats
    assert url is not None, "the command line gives a default NATS URL"
    with anyio.move_on_after(connect_timeout) as connecting:
        bus = await Bus.connect(
            url,
            prefix=config.bus_prefix,
            name=f"gateway-{replica_id}",
            wait_for_server=True,
            credentials=credentials,
        )
    if connecting.cancelled_caught:
        raise BusUnavailableError(f"cannot connect to {url} within {connect_timeout:g}s")
    async with bus:
        registry = RegistryClient(bus)
        discovery = DiscoveryClient(registry, **config.discovery.options())
        async with discovery:
            gateway = GatewayServer(config, discovery)
            # Admin canary actions go to the controller, so the cluster follows.
            gateway.canary_control = bus_canary_control(bus)
            circuits = CircuitBroadcaster(bus, replica_id)  # hooked up by run_cluster_sync
            peers = PeerTable(PRESENCE_TTL)
            started_at = time.time()
            async with anyio.create_task_group() as tg:
                await tg.start(stop_on_signal, tg.cancel_scope, log, "gateway.stopping")
                await tg.start(run_cluster_sync, bus, gateway, replica_id, peers, circuits)
                addresses = await tg.start(_serve, gateway)
                address = "{}:{}".format(*addresses[0])

                def presence(leaving: bool) -> Presence:
                    http = gateway.http_server
                    return Presence(
                        replica_id=replica_id,
                        address=address,
                        admin_address=config.admin_listen,
                        started_at=started_at,
                        load=float(http.in_flight if http is not None else 0),
                        leaving=leaving,
                    )

                tg.start_soon(circuits.run)
                tg.start_soon(publish_metrics, bus, gateway, replica_id)
                tg.start_soon(watch_presence, bus, peers)
                tg.start_soon(announce_presence, bus, presence)
                tg.start_soon(follow_canary_weights, bus, gateway)
                log.info(
                    "gateway.started",
                    replica=replica_id,
                    mode="bus",
                    nats=url,
                    address=address,
                    routes=len(gateway.routes),
                )
    log.info("gateway.exited", replica=replica_id)


async def _serve(
    gateway: GatewayServer,
    *,
    task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    await gateway.serve(task_status=task_status)
