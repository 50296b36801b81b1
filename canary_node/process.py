"""`run_canary_controller`: one canary controller as a process — connect to
NATS, campaign for the leader lease, lead the rollouts while it holds it,
stand by otherwise; on SIGTERM or SIGINT release the lease (so a standby
takes over at once) and stop.
"""

from __future__ import annotations

import os
import socket

import anyio
import structlog

from canary_node.election import campaign
from canary_node.leader import WEIGHTS_INTERVAL, CanaryLeader
from canary_node.leader_lease import LeaseTerms
from canary_node.lease_bucket import LeaseBucket
from meshgate.bus.connection import Bus, redact_servers
from meshgate.bus.credentials import NatsCredentials
from meshgate.bus.errors import BusUnavailableError
from meshgate.gateway.config import GatewayConfig
from meshgate.process_signals import stop_on_signal

log = structlog.get_logger("meshgate.canary")


def default_node_id() -> str:
    """``canary-<hostname>-<pid>``: unique among the controllers of a cluster."""
    return f"canary-{socket.gethostname()}-{os.getpid()}"


def canary_routes(config: GatewayConfig) -> list[str]:
    """Names of the routes of `config` that roll out a canary.

    >>> from meshgate.gateway.config_file import gateway_config_from_mapping
    >>> config = gateway_config_from_mapping({"routes": [
    ...     {"path": "/a/**", "upstreams": ["127.0.0.1:1"]},
    ...     {"name": "orders", "path": "/b/**", "service_name": "orders",
    ...      "canary": {"stable": {"version": "1"}, "canary": {"version": "2"}}}]}, source="x")
    >>> canary_routes(config)
    ['orders']
    """
    return [route.name for route in config.routes if route.canary is not None]


async def run_canary_controller(
    config: GatewayConfig,
    *,
    nats_url: str,
    prefix: str = "mesh",
    node_id: str | None = None,
    lease_ttl: float = 3.0,
    interval: float = 1.0,
    weights_every: float = WEIGHTS_INTERVAL,
    credentials: NatsCredentials | None = None,
    connect_timeout: float = 10.0,
) -> None:
    """Run a controller for `config`'s canary routes until SIGTERM/SIGINT
    (or until cancelled). Raises `BusUnavailableError` when NATS does not
    answer within `connect_timeout` seconds, `BusAuthError` at once when it
    refuses `credentials`, `ValueError` for a `lease_ttl` that cannot work.

    >>> async def main(config: GatewayConfig) -> None:
    ...     await run_canary_controller(config, nats_url="nats://127.0.0.1:4222",
    ...                                 node_id="canary-a", lease_ttl=3.0)
    """
    terms = LeaseTerms.for_ttl(lease_ttl)
    node_id = node_id or default_node_id()
    where = redact_servers([nats_url])
    with anyio.move_on_after(connect_timeout) as connecting:
        bus = await Bus.connect(
            nats_url,
            prefix=prefix,
            name=f"canary-{node_id}",
            wait_for_server=True,
            credentials=credentials,
        )
    if connecting.cancelled_caught:
        raise BusUnavailableError(f"cannot connect to {where} within {connect_timeout:g}s")
    async with bus:
        bucket_name = bus.subjects.canary_bucket
        bucket = LeaseBucket(bus, bucket=bucket_name, node_id=node_id, terms=terms)
        leader = CanaryLeader(
            bus, config, bucket=bucket_name, interval=interval, weights_every=weights_every
        )
        routes = canary_routes(config)
        if not routes:
            log.warning("canary.no_canary_routes", node=node_id)
        async with anyio.create_task_group() as tg:
            await tg.start(stop_on_signal, tg.cancel_scope, log, "canary.stopping")
            tg.start_soon(campaign, bucket, leader.lead)
            log.info(
                "canary.started",
                node=node_id,
                routes=routes,
                bucket=bucket_name,
                lease_ttl=lease_ttl,
                interval=interval,
                prefix=prefix,
                nats=where,
            )
    log.info("canary.stopped", node=node_id)


__all__ = ["canary_routes", "default_node_id", "run_canary_controller"]
